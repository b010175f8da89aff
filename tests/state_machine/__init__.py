"""The real definition file on moto's Step Functions interpreter with the real handlers, on the
simulated world's virtual clock: drain paths, timed scenarios, Spot stop, other hooks, published
versions, logging and reporting."""

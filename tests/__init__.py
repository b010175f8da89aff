"""The tests, by level: unit/ (plain functions), handlers/ (one Lambda against moto and the
world), template/ (the synthesized stack), state_machine/ (the real definition and handlers on the
virtual clock), reliability/ (hostile input, faults, failed and duplicate executions), commands/
(sandbox, drains, bench), project/ (docs and layout), simulated_aws/ (the world itself). Shared:
conftest.py, worlds.py, steps.py, fixtures/."""

"""IAM in the simulated world: moto enforces none, so each handler's calls are checked here.

- stack_template.py  the synthesized stack's policies, intrinsics resolved to the world's ARNs
- calls.py           what each AWS call asks IAM: action, resources, condition keys
- evaluation.py      AWS's policy evaluation logic over identity and resource policies
- authorization.py   the botocore hook that runs a handler's calls as its function's role
"""

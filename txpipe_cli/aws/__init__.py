"""The AWS target: the Lambda artifact (`package`), deploying it with boto3 and CloudFormation (planner,
applier, deployer over one AwsClient), the price of a deployment (pricing), the preflight (doctor), the
functions' logs and the target itself (target.py).

Imports: `lambdas`, `infra` and txpipe_cli's top-level modules; never the local target, a command or the
dashboard. Imported by targets.py (the factory) and the commands (deploy --plan's price, doctor, package).
"""

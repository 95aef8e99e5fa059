"""The AWS target: the Lambda artifact (`package`), and deploying it with boto3 and CloudFormation."""

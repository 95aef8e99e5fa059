"""What the operator's AWS principal must be allowed to do for deploy, destroy and the day's commands, each
action on the ARN deploy touches: the README's "IAM permissions the operator needs" as data. `txpipe doctor`
simulates them (txpipe_cli/aws/doctor.py); tests/aws/test_doctor.py keeps them and the README in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    service: str
    names: str  # its actions, space-separated, without the service prefix
    resource: str  # an ARN template: {p} partition, {r} region, {a} account, {stack}, {bucket}
    when: str | None = None  # a template condition; the actions are needed only when it holds

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(f"{self.service}:{name}" for name in self.names.split())


# README "Deploying to AWS" > "IAM permissions the operator needs", as data: keep the two in step
# (tests/aws/test_doctor.py checks every action the README names is here). Each on the name deploy
# gives; "*" where AWS has no resource-level permission or CloudFormation makes up the name.
OPERATOR_PERMISSIONS = (
    Permission("sts", "GetCallerIdentity", "*"),
    Permission("cloudformation", "CreateChangeSet DescribeChangeSet ExecuteChangeSet DeleteChangeSet DescribeStacks "
               "DescribeStackEvents ListStackResources DeleteStack", "arn:{p}:cloudformation:{r}:{a}:stack/{stack}/*"),
    Permission("s3", "CreateBucket PutBucketEncryption PutBucketPublicAccessBlock ListBucket ListBucketVersions "
               "DeleteBucket", "arn:{p}:s3:::{bucket}"),
    Permission("s3", "PutObject GetObject DeleteObject DeleteObjectVersion", "arn:{p}:s3:::{bucket}/*"),
    # Through CloudFormation, which acts with the operator's permissions: the stack's resource types.
    Permission("ec2", "CreateVpc ModifyVpcAttribute DeleteVpc CreateSubnet DeleteSubnet CreateRouteTable "
               "DeleteRouteTable AssociateRouteTable DisassociateRouteTable CreateVpcEndpoint DeleteVpcEndpoints "
               "CreateTags", "*", "CreateNetwork"),
    Permission("ec2", "CreateSecurityGroup DeleteSecurityGroup AuthorizeSecurityGroupIngress "
               "AuthorizeSecurityGroupEgress RevokeSecurityGroupEgress DescribeSecurityGroups DescribeVpcs "
               "DescribeSubnets", "*"),
    # Deploy's own reads: S3's prefix list (the security groups' HTTPS destination); an existing VPC's routes.
    Permission("ec2", "DescribeManagedPrefixLists DescribeRouteTables DescribeVpcEndpoints", "*"),
    Permission("rds", "CreateDBInstance ModifyDBInstance DeleteDBInstance DescribeDBInstances CreateDBSubnetGroup "
               "DeleteDBSubnetGroup AddTagsToResource", "*"),
    Permission("redshift-serverless", "CreateNamespace GetNamespace DeleteNamespace CreateWorkgroup GetWorkgroup "
               "DeleteWorkgroup", "*", "UseServerless"),
    # Deploy's own, after the stack: the workgroup's monthly usage limit (no CloudFormation resource type).
    Permission("redshift-serverless", "ListUsageLimits CreateUsageLimit UpdateUsageLimit", "*", "UseServerless"),
    Permission("redshift", "CreateCluster DescribeClusters DeleteCluster CreateClusterSubnetGroup "
               "DeleteClusterSubnetGroup", "*", "UseProvisioned"),
    Permission("secretsmanager", "CreateSecret DeleteSecret GetRandomPassword TagResource", "*"),
    Permission("sqs", "CreateQueue SetQueueAttributes GetQueueAttributes DeleteQueue",
               "arn:{p}:sqs:{r}:{a}:{stack}-orders"),
    Permission("lambda", "CreateFunction GetFunction UpdateFunctionCode UpdateFunctionConfiguration DeleteFunction "
               "AddPermission RemovePermission", "arn:{p}:lambda:{r}:{a}:function:{stack}-ingest"),
    Permission("lambda", "CreateEventSourceMapping GetEventSourceMapping DeleteEventSourceMapping", "*"),
    # The warehouse's staging bucket (a name CloudFormation generates from the stack's), emptied by destroy.
    Permission("s3", "CreateBucket PutBucketEncryption PutBucketPublicAccessBlock PutBucketOwnershipControls "
               "PutLifecycleConfiguration PutBucketPolicy DeleteBucketPolicy ListBucket ListBucketVersions "
               "DeleteBucket", "arn:{p}:s3:::{stack}-warehousestagingbucket-example"),
    Permission("s3", "DeleteObject DeleteObjectVersion", "arn:{p}:s3:::{stack}-warehousestagingbucket-example/*"),
    Permission("iam", "CreateRole GetRole PutRolePolicy PassRole DeleteRolePolicy DeleteRole",
               "arn:{p}:iam::{a}:role/{stack}-IngestRole-EXAMPLE"),
    Permission("logs", "CreateLogGroup PutRetentionPolicy DeleteLogGroup",
               "arn:{p}:logs:{r}:{a}:log-group:/aws/lambda/{stack}-ingest"),
    Permission("cloudwatch", "PutMetricAlarm DeleteAlarms", "arn:{p}:cloudwatch:{r}:{a}:alarm:{stack}-dead-letters"),
    Permission("apigateway", "POST GET PUT PATCH DELETE", "arn:{p}:apigateway:{r}::/restapis/*"),
    Permission("scheduler", "CreateSchedule GetSchedule DeleteSchedule",
               "arn:{p}:scheduler:{r}:{a}:schedule/default/{stack}-sync"),
    # Day to day: status, sync-now, sla-report, report, dlq, endpoint.
    Permission("lambda", "InvokeFunction", "arn:{p}:lambda:{r}:{a}:function:{stack}-ops"),
    Permission("sqs", "GetQueueAttributes", "arn:{p}:sqs:{r}:{a}:{stack}-orders-dlq"),
    Permission("apigateway", "GET", "arn:{p}:apigateway:{r}::/apikeys/*"),
    Permission("cloudwatch", "DescribeAlarms", "*"),
    Permission("logs", "FilterLogEvents", "arn:{p}:logs:{r}:{a}:log-group:/aws/lambda/{stack}-sync:*"),  # logs
)

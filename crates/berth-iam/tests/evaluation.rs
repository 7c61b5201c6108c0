//! The evaluation table: one row per case, each naming who asks, what, under which policies and context, and the
//! expected [`Reason`].
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_iam::{evaluate, Reason, Request, Value};
use common::*;

struct Case {
    name: &'static str,
    who: Who,
    action: &'static str,
    resource: &'static str,
    identity: Vec<String>,
    repo_policy: Option<String>,
    registry_policy: Option<String>,
    ctx: Ctx,
    expect: Option<Reason>,
}

fn case(name: &'static str, who: Who, action: &'static str) -> Case {
    Case {
        name,
        who,
        action,
        resource: REPO,
        identity: Vec::new(),
        repo_policy: None,
        registry_policy: None,
        ctx: Ctx::default(),
        expect: None,
    }
}

impl Case {
    /// Adds one identity-based policy made of these statements.
    fn id(mut self, statements: &[&str]) -> Self {
        self.identity.push(doc(statements));
        self
    }
    fn repo(mut self, statements: &[&str]) -> Self {
        self.repo_policy = Some(doc(statements));
        self
    }
    fn registry(mut self, statements: &[&str]) -> Self {
        self.registry_policy = Some(doc(statements));
        self
    }
    fn on(mut self, resource: &'static str) -> Self {
        self.resource = resource;
        self
    }
    fn ctx(mut self, f: impl FnOnce(&mut Ctx)) -> Self {
        f(&mut self.ctx);
        self
    }
    fn is(mut self, r: Reason) -> Self {
        self.expect = Some(r);
        self
    }
}

use Reason::{
    AccountRoot as ROOT, CrossAccountAllows as CROSS, ExplicitDeny as DENY,
    IdentityPolicyAllows as ID, NoIdentityPolicyAllows as NO_ID, NoResourcePolicyAllows as NO_RES,
    ResourcePolicyAllows as RES,
};

const ALLOW_ALL: &str = r#""Effect":"Allow","Action":"*","Resource":"*""#;
const ALLOW_ECR: &str = r#""Effect":"Allow","Action":"ecr:*","Resource":"*""#;
const ALLOW_PUT: &str = r#""Effect":"Allow","Action":"ecr:PutImage","Resource":"*""#;

/// `{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":<cond>}`.
fn allow_if(cond: &str) -> String {
    format!(r#""Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{cond}"#)
}

fn cond(name: &'static str, who: Who, condition: &str) -> Case {
    let c = allow_if(condition);
    case(name, who, "ecr:BatchGetImage").id(&[&c])
}

fn cases() -> Vec<Case> {
    let t2024 = || at("2024-05-01T12:00:00Z");
    vec![
        // --- Allow, default deny, explicit deny ---
        case("identity allow exact action", Who::Alice, "ecr:PutImage").id(&[ALLOW_PUT]).is(ID),
        case("no policy at all: implicit deny", Who::Alice, "ecr:PutImage").is(NO_ID),
        case("allow of another action: implicit deny", Who::Alice, "ecr:DeleteRepository").id(&[ALLOW_PUT]).is(NO_ID),
        case("deny in another identity policy beats allow", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .id(&[r#""Sid":"NoPush","Effect":"Deny","Action":"ecr:PutImage","Resource":"*""#])
            .is(DENY),
        case("deny in the same policy beats allow", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ALL, r#""Effect":"Deny","Action":"ecr:Put*","Resource":"*""#])
            .is(DENY),
        case("deny in repository policy beats identity allow", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:PutImage""#])
            .is(DENY),
        case("deny to * in repository policy beats resource allow", Who::Alice, "ecr:PutImage")
            .repo(&[
                r#""Effect":"Allow","Principal":"*","Action":"ecr:*""#,
                r#""Effect":"Deny","Principal":"*","Action":"ecr:PutImage""#,
            ])
            .is(DENY),
        case("deny in registry policy beats allow", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .registry(&[r#""Effect":"Deny","Principal":{"AWS":"111111111111"},"Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/*""#])
            .is(DENY),
        // --- The account root ---
        case("root needs no policy in its own account", Who::Root, "ecr:DeleteRepository").is(ROOT),
        case("root is bound by a resource-policy deny", Who::Root, "ecr:DeleteRepository")
            .repo(&[r#""Effect":"Deny","Principal":"*","Action":"ecr:DeleteRepository""#])
            .is(DENY),
        case("root of another account needs a resource policy", Who::OtherRoot, "ecr:BatchGetImage").is(NO_RES),
        case("root of another account allowed by resource policy naming its account", Who::OtherRoot, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"ecr:BatchGetImage""#])
            .is(CROSS),
        // --- NotAction / NotResource ---
        case("NotAction allow covers other actions", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","NotAction":"ecr:DeleteRepository","Resource":"*""#])
            .is(ID),
        case("NotAction allow excludes the named action", Who::Alice, "ecr:DeleteRepository")
            .id(&[r#""Effect":"Allow","NotAction":["ecr:DeleteRepository","ecr:SetRepositoryPolicy"],"Resource":"*""#])
            .is(NO_ID),
        case("NotAction deny denies everything but pulls", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR, r#""Effect":"Deny","NotAction":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"*""#])
            .is(DENY),
        case("NotAction deny leaves pulls alone", Who::Alice, "ecr:GetDownloadUrlForLayer")
            .id(&[ALLOW_ECR, r#""Effect":"Deny","NotAction":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"*""#])
            .is(ID),
        case("NotResource allow covers other repositories", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","NotResource":"arn:aws:ecr:us-east-1:111111111111:repository/secret""#])
            .is(ID),
        case("NotResource allow excludes the named repository", Who::Alice, "ecr:PutImage")
            .on("arn:aws:ecr:us-east-1:111111111111:repository/secret")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","NotResource":"arn:aws:ecr:us-east-1:111111111111:repository/secret""#])
            .is(NO_ID),
        case("NotResource deny outside team/*", Who::Alice, "ecr:PutImage")
            .on("arn:aws:ecr:us-east-1:111111111111:repository/other/app")
            .id(&[ALLOW_ECR, r#""Effect":"Deny","Action":"ecr:*","NotResource":"arn:aws:ecr:*:*:repository/team/*""#])
            .is(DENY),
        // --- Action and resource wildcards ---
        case("action * wildcard", Who::Alice, "ecr:BatchGetImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:Batch*","Resource":"*""#])
            .is(ID),
        case("action ? wildcard", Who::Alice, "ecr:GetDownloadUrlForLayer")
            .id(&[r#""Effect":"Allow","Action":"ecr:Get?ownloadUrlFor?ayer","Resource":"*""#])
            .is(ID),
        case("action ? needs exactly one character", Who::Alice, "ecr:GetDownloadUrlForLayer")
            .id(&[r#""Effect":"Allow","Action":"ecr:Get?DownloadUrlForLayer","Resource":"*""#])
            .is(NO_ID),
        case("actions are case-insensitive", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ECR:putimage","Resource":"*""#])
            .is(ID),
        case("action * matches everything", Who::Alice, "ecr:PutImage").id(&[ALLOW_ALL]).is(ID),
        case("other service's actions do not match", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"s3:*","Resource":"*""#])
            .is(NO_ID),
        case("resource * in region segment", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/team/*""#])
            .is(ID),
        case("resource ? wildcard", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-?:111111111111:repository/te?m/app""#])
            .is(ID),
        case("resource in another region", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:eu-west-1:111111111111:repository/*""#])
            .is(NO_ID),
        case("resources are case-sensitive", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:111111111111:repository/Team/app""#])
            .is(NO_ID),
        case("trailing * expands across segments", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*""#])
            .is(ID),
        case("resource * for an action without a resource", Who::Alice, "ecr:GetAuthorizationToken")
            .on("*")
            .id(&[ALLOW_ECR])
            .is(ID),
        case("an ARN pattern does not cover resource *", Who::Alice, "ecr:GetAuthorizationToken")
            .on("*")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/*""#])
            .is(NO_ID),
        // --- Principal forms (same account, repository policy only) ---
        case("Principal * allows alone", Who::Alice, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage""#])
            .is(RES),
        case("Principal AWS * allows alone", Who::Alice, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"*"},"Action":"ecr:BatchGetImage""#])
            .is(RES),
        case("Principal user ARN allows alone", Who::Alice, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:*""#])
            .is(RES),
        case("Principal naming another user", Who::Carol, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:*""#])
            .is(NO_ID),
        case("Principal account id delegates to IAM: not enough alone", Who::Alice, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"ecr:*""#])
            .is(NO_ID),
        case("Principal root ARN plus identity allow", Who::Alice, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"ecr:*""#])
            .is(ID),
        case("Principal list", Who::Alice, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111111111111:user/zed","arn:aws:iam::111111111111:user/alice"]},"Action":"ecr:*""#])
            .is(RES),
        case("Principal user ARN with a path", Who::Carol, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/dev/carol"},"Action":"ecr:*""#])
            .is(RES),
        case("Principal Service", Who::Service, "ecr:ReplicateImage")
            .registry(&[r#""Effect":"Allow","Principal":{"Service":"replication.ecr.amazonaws.com"},"Action":"ecr:ReplicateImage","Resource":"*""#])
            .is(RES),
        case("anonymous allowed by Principal *", Who::Anonymous, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage""#])
            .is(RES),
        case("anonymous not named by a user principal", Who::Anonymous, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:*""#])
            .is(NO_RES),
        // --- NotPrincipal ---
        case("NotPrincipal exempts user listed with its account", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111111111111:user/alice","arn:aws:iam::111111111111:root"]},"Action":"ecr:PutImage""#])
            .is(ID),
        case("NotPrincipal denies everyone else", Who::Carol, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111111111111:user/alice","arn:aws:iam::111111111111:root"]},"Action":"ecr:PutImage""#])
            .is(DENY),
        case("NotPrincipal without the account does not exempt the user", Who::Alice, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:PutImage""#])
            .is(DENY),
        case("NotPrincipal account exempts its root", Who::Root, "ecr:PutImage")
            .repo(&[r#""Effect":"Deny","NotPrincipal":{"AWS":"111111111111"},"Action":"ecr:*""#])
            .is(ROOT),
        // --- Cross-account ---
        case("cross-account: identity and resource both allow", Who::Bob, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/bob"},"Action":"ecr:BatchGetImage""#])
            .is(CROSS),
        case("cross-account: identity side only", Who::Bob, "ecr:BatchGetImage").id(&[ALLOW_ECR]).is(NO_RES),
        case("cross-account: resource side only", Who::Bob, "ecr:BatchGetImage")
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/bob"},"Action":"ecr:BatchGetImage""#])
            .is(NO_ID),
        case("cross-account: resource names the caller's account root", Who::Bob, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"ecr:BatchGetImage""#])
            .is(CROSS),
        case("cross-account: resource names the caller's account id", Who::Bob, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":["333333333333","222222222222"]},"Action":"ecr:BatchGetImage""#])
            .is(CROSS),
        case("cross-account: resource names a third account", Who::Bob, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"333333333333"},"Action":"ecr:BatchGetImage""#])
            .is(NO_RES),
        case("cross-account: registry policy grants the resource side", Who::Bob, "ecr:ReplicateImage")
            .id(&[ALLOW_ECR])
            .registry(&[r#""Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":["ecr:ReplicateImage","ecr:CreateRepository"],"Resource":"arn:aws:ecr:us-east-1:111111111111:repository/*""#])
            .is(CROSS),
        case("cross-account: resource deny wins", Who::Bob, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR])
            .repo(&[
                r#""Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"ecr:*""#,
                r#""Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:user/bob"},"Action":"ecr:*""#,
            ])
            .is(DENY),
        case("cross-account: action outside the resource grant", Who::Bob, "ecr:PutImage")
            .id(&[ALLOW_ECR])
            .repo(&[r#""Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"ecr:BatchGetImage""#])
            .is(NO_RES),
        // --- Same account, resource policy only ---
        case("same account: registry policy naming the user allows alone", Who::Alice, "ecr:CreateRepository")
            .registry(&[r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"ecr:CreateRepository","Resource":"*""#])
            .is(RES),
        case("same account: repository policy for another action", Who::Alice, "ecr:PutImage")
            .repo(&[r#""Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage""#])
            .is(NO_ID),
        // --- String operators ---
        cond("StringEquals aws:username", Who::Alice, r#"{"StringEquals":{"aws:username":"alice"}}"#).is(ID),
        cond("StringEquals aws:username, other user", Who::Carol, r#"{"StringEquals":{"aws:username":"alice"}}"#).is(NO_ID),
        cond("StringEquals values OR", Who::Carol, r#"{"StringEquals":{"aws:username":["alice","carol"]}}"#).is(ID),
        cond("StringEquals is case-sensitive", Who::Alice, r#"{"StringEquals":{"aws:username":"Alice"}}"#).is(NO_ID),
        cond("StringNotEquals is NOR: none listed", Who::Alice, r#"{"StringNotEquals":{"aws:username":["carol","dave"]}}"#).is(ID),
        cond("StringNotEquals is NOR: one listed", Who::Alice, r#"{"StringNotEquals":{"aws:username":["carol","alice"]}}"#).is(NO_ID),
        cond("StringEqualsIgnoreCase", Who::Alice, r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#).is(ID),
        cond("StringNotEqualsIgnoreCase", Who::Alice, r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#).is(NO_ID),
        cond("StringLike with * and ?", Who::Alice, r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/al?ce"}}"#).is(ID),
        cond("StringNotLike", Who::Alice, r#"{"StringNotLike":{"aws:PrincipalArn":"*:user/a*"}}"#).is(NO_ID),
        cond("aws:PrincipalAccount", Who::Alice, r#"{"StringEquals":{"aws:PrincipalAccount":"111111111111"}}"#).is(ID),
        cond("aws:userid", Who::Alice, r#"{"StringEquals":{"aws:userid":"AIDAALICE"}}"#).is(ID),
        cond("aws:PrincipalType", Who::Alice, r#"{"StringEquals":{"aws:PrincipalType":"User"}}"#).is(ID),
        cond("condition key names are case-insensitive", Who::Alice, r#"{"StringEquals":{"AWS:USERNAME":"alice"}}"#).is(ID),
        cond("aws:PrincipalTag (tag key case-insensitive)", Who::Alice, r#"{"StringEquals":{"aws:PrincipalTag/Team":"platform"}}"#)
            .ctx(|c| c.principal_tags = vec![("team", "platform")])
            .is(ID),
        cond("ecr:ResourceTag", Who::Alice, r#"{"StringEquals":{"ecr:ResourceTag/env":"prod"}}"#)
            .ctx(|c| c.resource_tags = vec![("env", "dev")])
            .is(NO_ID),
        // --- ARN operators ---
        cond("ArnLike aws:PrincipalArn", Who::Alice, r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/*"}}"#).is(ID),
        cond("ArnNotLike aws:PrincipalArn", Who::Alice, r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/*"}}"#).is(NO_ID),
        cond("ArnEquals", Who::Carol, r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/dev/carol"}}"#).is(ID),
        cond("ArnNotEquals", Who::Carol, r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/dev/carol"}}"#).is(NO_ID),
        cond("ArnLike * stays within its segment", Who::Alice, r#"{"ArnLike":{"aws:SourceArn":"arn:aws:logs:*:log-group:a:b"}}"#)
            .ctx(|c| c.extra = vec![("aws:SourceArn", Value::Str("arn:aws:logs:us-east-1:111111111111:log-group:a:b"))])
            .is(NO_ID),
        cond("ArnLike on a key holding an ARN with colons in its resource", Who::Alice, r#"{"ArnLike":{"aws:SourceArn":"arn:aws:logs:*:*:log-group:a:*"}}"#)
            .ctx(|c| c.extra = vec![("aws:SourceArn", Value::Str("arn:aws:logs:us-east-1:111111111111:log-group:a:b"))])
            .is(ID),
        // --- Numeric operators ---
        cond("NumericEquals", Who::Alice, r#"{"NumericEquals":{"ecr:MaxResults":50}}"#)
            .ctx(|c| c.extra = vec![("ecr:MaxResults", Value::Number(50.0))])
            .is(ID),
        cond("NumericNotEquals", Who::Alice, r#"{"NumericNotEquals":{"ecr:MaxResults":"50"}}"#)
            .ctx(|c| c.extra = vec![("ecr:MaxResults", Value::Str("50"))])
            .is(NO_ID),
        cond("NumericLessThan", Who::Alice, r#"{"NumericLessThan":{"ecr:MaxResults":100}}"#)
            .ctx(|c| c.extra = vec![("ecr:MaxResults", Value::Number(50.0))])
            .is(ID),
        cond("NumericLessThanEquals", Who::Alice, r#"{"NumericLessThanEquals":{"ecr:MaxResults":49.5}}"#)
            .ctx(|c| c.extra = vec![("ecr:MaxResults", Value::Number(50.0))])
            .is(NO_ID),
        cond("NumericGreaterThan", Who::Alice, r#"{"NumericGreaterThan":{"ecr:MaxResults":10}}"#)
            .ctx(|c| c.extra = vec![("ecr:MaxResults", Value::Number(50.0))])
            .is(ID),
        cond("NumericGreaterThanEquals with aws:EpochTime", Who::Alice, r#"{"NumericGreaterThanEquals":{"aws:EpochTime":1800000000}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(NO_ID),
        // --- Date operators ---
        cond("DateLessThan ISO 8601", Who::Alice, r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(ID),
        cond("DateGreaterThan ISO 8601", Who::Alice, r#"{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(NO_ID),
        cond("DateGreaterThanEquals epoch seconds", Who::Alice, r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"1714564800"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(ID),
        cond("DateEquals same instant, other offset", Who::Alice, r#"{"DateEquals":{"aws:CurrentTime":"2024-05-01T14:00:00+02:00"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(ID),
        cond("DateNotEquals", Who::Alice, r#"{"DateNotEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(NO_ID),
        cond("DateLessThanEquals with aws:EpochTime", Who::Alice, r#"{"DateLessThanEquals":{"aws:EpochTime":"2024-05-01T12:00:00Z"}}"#)
            .ctx(|c| c.time = Some(t2024()))
            .is(ID),
        cond("Date condition without a time in the request", Who::Alice, r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01"}}"#).is(NO_ID),
        // --- Bool ---
        cond("Bool aws:SecureTransport true", Who::Alice, r#"{"Bool":{"aws:SecureTransport":"true"}}"#)
            .ctx(|c| c.secure = Some(true))
            .is(ID),
        cond("Bool aws:SecureTransport over plain HTTP", Who::Alice, r#"{"Bool":{"aws:SecureTransport":true}}"#)
            .ctx(|c| c.secure = Some(false))
            .is(NO_ID),
        case("deny when not over TLS", Who::Alice, "ecr:BatchGetImage")
            .id(&[ALLOW_ECR, r#""Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#])
            .ctx(|c| c.secure = Some(false))
            .is(DENY),
        // --- IP addresses ---
        cond("IpAddress IPv4 CIDR", Who::Alice, r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#)
            .ctx(|c| c.source_ip = Some(ip("10.20.30.40")))
            .is(ID),
        cond("IpAddress outside the CIDR", Who::Alice, r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","172.16.0.0/12"]}}"#)
            .ctx(|c| c.source_ip = Some(ip("192.168.1.1")))
            .is(NO_ID),
        cond("IpAddress IPv6 CIDR", Who::Alice, r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#)
            .ctx(|c| c.source_ip = Some(ip("2001:db8:abcd::1")))
            .is(ID),
        cond("IpAddress single address, IPv4-mapped caller", Who::Alice, r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#)
            .ctx(|c| c.source_ip = Some(ip("::ffff:203.0.113.7")))
            .is(ID),
        cond("NotIpAddress", Who::Alice, r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#)
            .ctx(|c| c.source_ip = Some(ip("10.1.1.1")))
            .is(NO_ID),
        cond("IpAddress with no source ip", Who::Alice, r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#).is(NO_ID),
        cond("NotIpAddress with no source ip is true", Who::Alice, r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#).is(ID),
        // --- IfExists, Null, absent keys ---
        cond("StringEqualsIfExists, key absent", Who::Alice, r#"{"StringEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#).is(ID),
        cond("StringEqualsIfExists, key present and different", Who::Alice, r#"{"StringEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#)
            .ctx(|c| c.region = Some("eu-west-1"))
            .is(NO_ID),
        cond("StringEquals, key absent", Who::Alice, r#"{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#).is(NO_ID),
        cond("StringNotEquals, key absent", Who::Alice, r#"{"StringNotEquals":{"aws:RequestedRegion":"us-east-1"}}"#).is(ID),
        cond("IpAddressIfExists, key present", Who::Alice, r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#)
            .ctx(|c| c.source_ip = Some(ip("11.0.0.1")))
            .is(NO_ID),
        cond("Null true, key absent", Who::Alice, r#"{"Null":{"aws:SourceIp":"true"}}"#).is(ID),
        cond("Null true, key present", Who::Alice, r#"{"Null":{"aws:SourceIp":"true"}}"#)
            .ctx(|c| c.source_ip = Some(ip("10.0.0.1")))
            .is(NO_ID),
        cond("Null false, key present", Who::Alice, r#"{"Null":{"ecr:ResourceTag/env":false}}"#)
            .ctx(|c| c.resource_tags = vec![("env", "prod")])
            .is(ID),
        // --- Set qualifiers ---
        cond("ForAnyValue: one tag key matches", Who::Alice, r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","cost"]}}"#)
            .ctx(|c| c.request_tags = vec![("env", "prod"), ("team", "x")])
            .is(ID),
        cond("ForAnyValue: none matches", Who::Alice, r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#)
            .ctx(|c| c.request_tags = vec![("team", "x")])
            .is(NO_ID),
        cond("ForAnyValue: key absent is false", Who::Alice, r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#).is(NO_ID),
        cond("ForAllValues: every tag key allowed", Who::Alice, r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#)
            .ctx(|c| c.request_tags = vec![("env", "prod")])
            .is(ID),
        cond("ForAllValues: one tag key not allowed", Who::Alice, r#"{"ForAllValues:StringLike":{"aws:TagKeys":["env","team*"]}}"#)
            .ctx(|c| c.request_tags = vec![("env", "prod"), ("owner", "me")])
            .is(NO_ID),
        cond("ForAllValues: key absent is true", Who::Alice, r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}"#).is(ID),
        cond("tag keys named without values (UntagResource) are aws:TagKeys", Who::Alice, r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["protected"]}}"#)
            .ctx(|c| c.tag_keys = vec!["team", "protected"])
            .is(ID),
        cond("ForAllValues over tag keys without values", Who::Alice, r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#)
            .ctx(|c| c.tag_keys = vec!["team", "protected"])
            .is(NO_ID),
        cond("tag keys without values carry no aws:RequestTag", Who::Alice, r#"{"Null":{"aws:RequestTag/team":"true"}}"#)
            .ctx(|c| c.tag_keys = vec!["team"])
            .is(ID),
        cond("ForAnyValue:StringNotEquals: one value outside the list", Who::Alice, r#"{"ForAnyValue:StringNotEquals":{"ecr:Groups":["a","b"]}}"#)
            .ctx(|c| c.extra = vec![("ecr:Groups", Value::List(&["a", "c"]))])
            .is(ID),
        // --- Several keys and operators (AND) ---
        cond("two keys in one operator: both must hold", Who::Alice, r#"{"StringEquals":{"aws:username":"alice","aws:RequestedRegion":"us-east-1"}}"#)
            .ctx(|c| c.region = Some("eu-west-1"))
            .is(NO_ID),
        cond("two operators: both hold", Who::Alice, r#"{"StringEquals":{"aws:username":"alice"},"Bool":{"aws:SecureTransport":"true"}}"#)
            .ctx(|c| c.secure = Some(true))
            .is(ID),
        // --- Policy variables ---
        case("variable in Resource matches own prefix", Who::Alice, "ecr:PutImage")
            .on("arn:aws:ecr:us-east-1:111111111111:repository/alice/tools")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:${aws:PrincipalAccount}:repository/${aws:username}/*""#])
            .is(ID),
        case("variable in Resource excludes other prefixes", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*""#])
            .is(NO_ID),
        case("variable default when the key is absent", Who::Root, "ecr:PutImage")
            .on("arn:aws:ecr:us-east-1:222222222222:repository/shared/x")
            .repo(&[r#""Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username,'shared'}/*""#])
            .is(CROSS),
        case("variable without value or default matches nothing", Who::Alice, "ecr:PutImage")
            .id(&[r#""Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:PrincipalTag/team}/*""#])
            .is(NO_ID),
        cond("variable in a condition value", Who::Carol, r#"{"StringLike":{"aws:PrincipalArn":"*/${aws:username}"}}"#).is(ID),
        case("2008-10-17 policies have no variables", Who::Alice, "ecr:PutImage")
            .on("arn:aws:ecr:us-east-1:111111111111:repository/alice/tools")
            .id(&[])
            .is(NO_ID),
    ]
}

#[test]
fn evaluation_table() {
    let mut cases = cases();
    // The 2008 case needs a document without Version, which `doc` does not write.
    let last = cases.last_mut().unwrap();
    last.identity = vec![
        r#"{"Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}}"#
            .to_owned(),
    ];
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let identity: Vec<_> = c.identity.iter().map(|t| identity(t)).collect();
        let identity_refs: Vec<_> = identity.iter().collect();
        let repo = c.repo_policy.as_deref().map(resource);
        let registry = c.registry_policy.as_deref().map(resource);
        let p = c.who.principal();
        let resource_account = berth_iam::Arn::parse(c.resource).map_or(ACCT, |a| a.account);
        let req = Request {
            context: c.ctx.context(),
            identity_policies: &identity_refs,
            resource_policy: repo.as_ref(),
            registry_policy: registry.as_ref(),
            ..Request::new(p, c.action, c.resource, resource_account)
        };
        let d = evaluate(&req);
        let want = c.expect.expect("case without expectation");
        if d.reason != want {
            failures.push(format!(
                "{}: expected {want:?}, got {:?} ({d})",
                c.name, d.reason
            ));
        }
    }
    println!("{} evaluation cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

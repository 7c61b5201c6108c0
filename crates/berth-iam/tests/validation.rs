//! Every validation error, with the statement and field it names.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use berth_iam::{Policy, PolicyErrorKind as K, PolicyKind, SizeLimit};

fn err(text: &str, kind: PolicyKind) -> berth_iam::PolicyError {
    match Policy::parse(text, kind, SizeLimit::Unlimited) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

fn id_err(text: &str) -> berth_iam::PolicyError {
    err(text, PolicyKind::Identity)
}

fn res_err(text: &str) -> berth_iam::PolicyError {
    err(text, PolicyKind::Resource)
}

/// One identity statement body wrapped in a policy.
fn id_stmt(body: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ecr:*","Resource":"*"}},{{{body}}}]}}"#
    )
}

fn res_stmt(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":{{{body}}}}}"#)
}

#[test]
fn json_and_top_level() {
    assert!(matches!(id_err("{").kind, K::Json(_)));
    assert_eq!(
        id_err("[]").kind,
        K::WrongType {
            expected: "a JSON object"
        }
    );
    let e = id_err(r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#);
    assert_eq!(e.kind, K::UnknownField("Extra".into()));
    assert_eq!(e.to_string(), "field Extra: unknown field `Extra`");
    assert_eq!(
        id_err(r#"{"Version":"2012-10-17"}"#).kind,
        K::MissingField("Statement")
    );
    assert_eq!(
        id_err(r#"{"Version":"2012-10-17","Statement":[]}"#).kind,
        K::NoStatements
    );
    assert_eq!(
        id_err(r#"{"Version":"2012-10-17","Statement":"x"}"#)
            .location
            .field
            .as_deref(),
        Some("Statement")
    );
    let e = id_err(r#"{"Version":"2020-01-01","Statement":[]}"#);
    assert_eq!(e.kind, K::InvalidVersion("2020-01-01".into()));
    assert_eq!(
        id_err(r#"{"Version":2012,"Statement":[]}"#)
            .location
            .field
            .as_deref(),
        Some("Version")
    );
    assert_eq!(
        id_err(r#"{"Id":5,"Statement":[]}"#)
            .location
            .field
            .as_deref(),
        Some("Id")
    );
}

#[test]
fn statement_fields() {
    let e = id_err(&id_stmt(
        r#""Sid":"S2","Effect":"Allow","Action":"ecr:*","Resource":"*","Actions":"x""#,
    ));
    assert_eq!(e.kind, K::UnknownField("Actions".into()));
    assert_eq!(e.location.statement, Some(1));
    assert_eq!(e.location.sid.as_deref(), Some("S2"));
    assert_eq!(
        e.to_string(),
        "Statement[1] (Sid \"S2\"), field Actions: unknown field `Actions`"
    );

    let e = id_err(&id_stmt(r#""Action":"ecr:*","Resource":"*""#));
    assert_eq!(
        (e.kind, e.location.statement),
        (K::MissingField("Effect"), Some(1))
    );
    assert_eq!(
        id_err(&id_stmt(
            r#""Effect":"allow","Action":"ecr:*","Resource":"*""#
        ))
        .kind,
        K::InvalidEffect("allow".into())
    );
    assert_eq!(
        id_err(&id_stmt(r#""Effect":true,"Action":"ecr:*","Resource":"*""#))
            .location
            .field
            .as_deref(),
        Some("Effect")
    );
    assert_eq!(
        id_err(&id_stmt(r#""Effect":"Allow","Resource":"*""#)).kind,
        K::MissingField("Action")
    );
    assert_eq!(
        id_err(&id_stmt(
            r#""Effect":"Allow","Action":"ecr:*","NotAction":"ecr:Put*","Resource":"*""#
        ))
        .kind,
        K::Conflict("Action", "NotAction")
    );
    assert_eq!(
        id_err(&id_stmt(
            r#""Effect":"Allow","Action":"ecr:*","Resource":"*","NotResource":"*""#
        ))
        .kind,
        K::Conflict("Resource", "NotResource")
    );
    assert_eq!(
        id_err(&id_stmt(r#""Effect":"Allow","Action":"ecr:*""#)).kind,
        K::MissingField("Resource")
    );
    assert_eq!(
        id_err(&id_stmt(r#""Effect":"Allow","Action":[],"Resource":"*""#)).kind,
        K::EmptyList
    );
    assert_eq!(
        id_err(&id_stmt(r#""Effect":"Allow","Action":[1],"Resource":"*""#)).kind,
        K::WrongType {
            expected: "a string or an array of strings"
        }
    );
    assert_eq!(
        id_err(r#"{"Statement":[5]}"#).kind,
        K::WrongType {
            expected: "a statement object"
        }
    );
}

#[test]
fn sids() {
    let dup = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"A","Effect":"Allow","Action":"ecr:*","Resource":"*"},
        {"Sid":"A","Effect":"Deny","Action":"ecr:*","Resource":"*"}]}"#;
    let e = id_err(dup);
    assert_eq!(
        (e.kind, e.location.statement),
        (K::DuplicateSid("A".into()), Some(1))
    );
    assert_eq!(
        id_err(&id_stmt(
            r#""Sid":"has space","Effect":"Allow","Action":"ecr:*","Resource":"*""#
        ))
        .kind,
        K::InvalidSid("has space".into())
    );
    // Resource-based policies allow freer Sids (ECR's console writes "Allow pull").
    assert!(Policy::parse(
        &res_stmt(
            r#""Sid":"Allow pull","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage""#
        ),
        PolicyKind::Resource,
        SizeLimit::Unlimited
    )
    .is_ok());
}

#[test]
fn principals() {
    let e = id_err(&id_stmt(
        r#""Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*""#,
    ));
    assert_eq!(
        (e.kind, e.location.field.as_deref()),
        (K::PrincipalInIdentityPolicy, Some("Principal"))
    );
    assert_eq!(
        id_err(&id_stmt(
            r#""Effect":"Deny","NotPrincipal":"*","Action":"ecr:*","Resource":"*""#
        ))
        .kind,
        K::PrincipalInIdentityPolicy
    );
    assert_eq!(
        res_err(&res_stmt(r#""Effect":"Allow","Action":"ecr:*""#)).kind,
        K::MissingPrincipal
    );
    assert_eq!(
        res_err(&res_stmt(
            r#""Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"ecr:*""#
        ))
        .kind,
        K::Conflict("Principal", "NotPrincipal")
    );
    assert_eq!(
        res_err(&res_stmt(
            r#""Effect":"Allow","NotPrincipal":{"AWS":"111111111111"},"Action":"ecr:*""#
        ))
        .kind,
        K::NotPrincipalWithAllow
    );
    let bad = |p: &str| {
        res_err(&res_stmt(&format!(
            r#""Effect":"Allow","Principal":{p},"Action":"ecr:*""#
        )))
    };
    assert_eq!(bad(r#""alice""#).kind, K::InvalidPrincipal("alice".into()));
    assert_eq!(
        bad(r#"{"AWS":"12345"}"#).kind,
        K::InvalidPrincipal("12345".into())
    );
    assert_eq!(
        bad(r#"{"AWS":"arn:aws:iam::111111111111:user/*"}"#).kind,
        K::InvalidPrincipal("arn:aws:iam::111111111111:user/*".into())
    );
    assert_eq!(
        bad(r#"{"AWS":"arn:aws:ecr:us-east-1:111111111111:repository/x"}"#)
            .location
            .field
            .as_deref(),
        Some("Principal.AWS")
    );
    assert_eq!(
        bad(r#"{"AWS":"arn:aws:iam::1:root"}"#).kind,
        K::InvalidPrincipal("arn:aws:iam::1:root".into())
    );
    assert_eq!(
        bad(r#"{"Federated":"cognito-identity.amazonaws.com"}"#).kind,
        K::UnsupportedPrincipalType("Federated".into())
    );
    assert_eq!(
        bad(r#"{"Service":"*"}"#).kind,
        K::InvalidPrincipal("*".into())
    );
    assert_eq!(bad(r#"{}"#).kind, K::EmptyList);
    assert_eq!(
        bad("5").kind,
        K::WrongType {
            expected: "\"*\" or an object such as {\"AWS\": ...}"
        }
    );
}

#[test]
fn actions_and_resources() {
    let a = |act: &str| {
        id_err(&id_stmt(&format!(
            r#""Effect":"Allow","Action":"{act}","Resource":"*""#
        )))
    };
    assert_eq!(a("PutImage").kind, K::InvalidAction("PutImage".into()));
    assert_eq!(a("ecr:").kind, K::InvalidAction("ecr:".into()));
    assert_eq!(a("ecr:Put Image").location.field.as_deref(), Some("Action"));
    let r = |res: &str| {
        id_err(&id_stmt(&format!(
            r#""Effect":"Allow","Action":"ecr:*","Resource":"{res}""#
        )))
    };
    assert_eq!(
        r("repository/app").kind,
        K::InvalidResource("repository/app".into())
    );
    assert_eq!(
        r("arn:aws:ecr:us-east-1").kind,
        K::InvalidResource("arn:aws:ecr:us-east-1".into())
    );
    let e = r("arn:aws:ecr:us-east-1:12345:repository/app");
    assert_eq!(
        (e.kind, e.location.field.as_deref()),
        (
            K::InvalidArn("arn:aws:ecr:us-east-1:12345:repository/app".into()),
            Some("Resource")
        )
    );
    assert_eq!(
        r("arn:aws:ecr:*:*:repository/${aws:username").kind,
        K::InvalidVariable("arn:aws:ecr:*:*:repository/${aws:username".into())
    );
    let e = id_err(&id_stmt(
        r#""Effect":"Allow","Action":"ecr:*","NotResource":"nope""#,
    ));
    assert_eq!(e.location.field.as_deref(), Some("NotResource"));
}

#[test]
fn conditions() {
    let c = |cond: &str| {
        id_err(&id_stmt(&format!(
            r#""Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{cond}"#
        )))
    };
    let e = c(r#"{"StringEqualz":{"aws:username":"a"}}"#);
    assert_eq!(
        (e.kind.clone(), e.location.field.as_deref()),
        (K::UnknownOperator("StringEqualz".into()), Some("Condition"))
    );
    assert_eq!(
        e.to_string(),
        "Statement[1], field Condition: unknown condition operator `StringEqualz`"
    );
    assert_eq!(
        c(r#"{"NullIfExists":{"aws:SourceIp":"true"}}"#).kind,
        K::UnknownOperator("NullIfExists".into())
    );
    assert_eq!(
        c(r#"{"StringEquals":{"username":"a"}}"#).kind,
        K::InvalidConditionKey("username".into())
    );
    let e = c(r#"{"NumericLessThan":{"ecr:n":"ten"}}"#);
    assert_eq!(
        e.location.field.as_deref(),
        Some("Condition.NumericLessThan.ecr:n")
    );
    assert_eq!(
        e.kind,
        K::InvalidConditionValue {
            operator: "NumericLessThan".into(),
            value: "ten".into(),
            reason: "not a number"
        }
    );
    assert!(matches!(
        c(r#"{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}"#).kind,
        K::InvalidConditionValue { .. }
    ));
    assert!(matches!(
        c(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/40"}}"#).kind,
        K::InvalidConditionValue { .. }
    ));
    assert!(matches!(
        c(r#"{"Bool":{"aws:SecureTransport":"yes"}}"#).kind,
        K::InvalidConditionValue { .. }
    ));
    assert!(matches!(
        c(r#"{"ArnLike":{"aws:PrincipalArn":"user/*"}}"#).kind,
        K::InvalidConditionValue { .. }
    ));
    assert_eq!(
        c(r#"{"StringEquals":{"aws:username":[]}}"#).kind,
        K::EmptyList
    );
    assert_eq!(
        c(r#"{"StringEquals":{"aws:username":{"a":1}}}"#).kind,
        K::WrongType {
            expected: "a string, number or boolean"
        }
    );
    assert_eq!(
        c(r#"{"StringEquals":"a"}"#).kind,
        K::WrongType {
            expected: "an object of condition keys"
        }
    );
    assert_eq!(
        c(r#""a""#).kind,
        K::WrongType {
            expected: "an object of condition operators"
        }
    );
    assert_eq!(c(r#"{"StringEquals":{}}"#).kind, K::EmptyList);
}

#[test]
fn size_limits() {
    let body = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#;
    let spaced = body.replace(',', ",                    ");
    let chars = spaced.chars().count();
    let dense = berth_iam::non_whitespace_chars(&spaced);
    assert!(dense < chars);
    // IAM counts non-whitespace characters only.
    assert!(Policy::parse(
        &spaced,
        PolicyKind::Identity,
        SizeLimit::NonWhitespaceChars(dense)
    )
    .is_ok());
    let e = Policy::parse(
        &spaced,
        PolicyKind::Identity,
        SizeLimit::NonWhitespaceChars(dense - 1),
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        K::TooLarge {
            actual: dense,
            limit: dense - 1,
            counts_whitespace: false
        }
    );
    // ECR counts every character.
    let e = Policy::parse(&spaced, PolicyKind::Identity, SizeLimit::Chars(chars - 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the policy is {chars} characters long; the limit is {}",
            chars - 1
        )
    );
    // The published numbers.
    assert_eq!(SizeLimit::ECR_REPOSITORY_POLICY, SizeLimit::Chars(10_240));
    assert_eq!(SizeLimit::ECR_REGISTRY_POLICY, SizeLimit::Chars(10_240));
    assert_eq!(
        SizeLimit::IAM_USER_INLINE_POLICY,
        SizeLimit::NonWhitespaceChars(2_048)
    );
    let big = format!(
        r#"{{"Version":"2012-10-17","Id":"{}","Statement":{{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}}}"#,
        "x".repeat(2_100)
    );
    assert!(matches!(
        Policy::parse(
            &big,
            PolicyKind::Identity,
            SizeLimit::IAM_USER_INLINE_POLICY
        )
        .unwrap_err()
        .kind,
        K::TooLarge { .. }
    ));
    assert!(Policy::parse(&big, PolicyKind::Identity, SizeLimit::IAM_MANAGED_POLICY).is_ok());
}

#[test]
fn accepts_the_common_shapes() {
    // The repository policy ECR's console writes: no Resource, a Sid with spaces, Principal by account.
    let ecr = r#"{
      "Version": "2008-10-17",
      "Statement": [{
        "Sid": "allow pull",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::222222222222:root", "333333333333"]},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      }]
    }"#;
    let p = Policy::parse(ecr, PolicyKind::Resource, SizeLimit::ECR_REPOSITORY_POLICY).unwrap();
    assert_eq!(p.statement_sid(0), Some("allow pull"));
    assert_eq!(p.version(), berth_iam::PolicyVersion::V2008_10_17);
    // Operator names in any case; numbers and booleans as condition values.
    let text = r#"{"Version":"2012-10-17","Id":"p1","Statement":{"Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"bool":{"aws:SecureTransport":false},"numericlessthan":{"ecr:n":5}}}}"#;
    let p = Policy::parse(text, PolicyKind::Identity, SizeLimit::Unlimited).unwrap();
    assert_eq!(
        (p.id(), p.statement_effect(0)),
        (Some("p1"), Some(berth_iam::Effect::Deny))
    );
}

/// Deep nesting and huge element counts are refused before the JSON parser runs, even
/// without a size limit: 100,000 levels, or 20,000 elements, in a `Condition` value.
#[test]
fn json_depth_and_element_limits() {
    let deep = id_stmt(&format!(
        r#""Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{{"StringEquals":{{"aws:x":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    assert_eq!(
        id_err(&deep).kind,
        K::JsonLimits(berth_types::JsonLimitError::TooDeep { max: 64 })
    );
    let wide = id_stmt(&format!(
        r#""Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{{"StringEquals":{{"aws:x":[{}"a"]}}}}"#,
        r#""a","#.repeat(20_000)
    ));
    assert!(matches!(
        id_err(&wide).kind,
        K::JsonLimits(berth_types::JsonLimitError::TooManyElements { max: 10_000 })
    ));
    assert!(id_err(&wide).to_string().contains("more than 10000"));
}

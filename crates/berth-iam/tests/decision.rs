//! What a decision says: the deciding statement, the AWS denial message, the log line.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_iam::{evaluate, PolicySource, Reason, Request};
use common::*;

#[test]
fn explicit_identity_deny_names_policy_and_statement() {
    let allow = identity(&doc(&[
        r#""Sid":"All","Effect":"Allow","Action":"ecr:*","Resource":"*""#,
    ]))
    .with_name("ecr-all");
    let deny = identity(&doc(&[
        r#""Sid":"NoPush","Effect":"Deny","Action":"ecr:PutImage","Resource":"*""#,
    ]))
    .with_name("no-push");
    let policies = [&allow, &deny];
    let req = Request {
        identity_policies: &policies,
        ..Request::new(Who::Alice.principal(), "ecr:PutImage", REPO, ACCT)
    };
    let d = evaluate(&req);
    assert_eq!(d.reason, Reason::ExplicitDeny);
    assert!(d.is_explicit_deny() && !d.is_allowed());
    let st = d.statement.unwrap();
    assert_eq!(
        (st.source, st.index, st.sid(), st.policy.name()),
        (PolicySource::Identity, 0, Some("NoPush"), Some("no-push"))
    );
    assert_eq!(
        d.denial_message(&req).unwrap(),
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: ecr:PutImage on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/app with an explicit deny in an identity-based policy: no-push"
    );
    assert_eq!(
        d.to_string(),
        "denied: explicit deny in identity-based policy \"no-push\" statement \"NoPush\""
    );
}

#[test]
fn explicit_resource_deny_message() {
    let repo = resource(&doc(&[
        r#""Effect":"Deny","Principal":"*","Action":"ecr:DeleteRepository""#,
    ]));
    let req = Request {
        resource_policy: Some(&repo),
        ..Request::new(Who::Root.principal(), "ecr:DeleteRepository", REPO, ACCT)
    };
    let d = evaluate(&req);
    assert_eq!(d.statement.unwrap().source, PolicySource::Resource);
    assert_eq!(
        d.denial_message(&req).unwrap(),
        "User: arn:aws:iam::111111111111:root is not authorized to perform: ecr:DeleteRepository on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/app with an explicit deny in a resource-based policy"
    );
    assert_eq!(
        d.to_string(),
        "denied: explicit deny in resource-based policy statement #0"
    );
}

#[test]
fn implicit_deny_messages() {
    let req = Request::new(Who::Alice.principal(), "ecr:PutImage", REPO, ACCT);
    let d = evaluate(&req);
    assert_eq!(d.reason, Reason::NoIdentityPolicyAllows);
    assert!(d.statement.is_none());
    assert_eq!(
        d.denial_message(&req).unwrap(),
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: ecr:PutImage on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/app because no identity-based policy allows the \
         ecr:PutImage action"
    );

    let allow = identity(&doc(&[
        r#""Effect":"Allow","Action":"ecr:*","Resource":"*""#,
    ]));
    let policies = [&allow];
    let req = Request {
        identity_policies: &policies,
        ..Request::new(Who::Bob.principal(), "ecr:BatchGetImage", REPO, ACCT)
    };
    let d = evaluate(&req);
    assert!(d
        .denial_message(&req)
        .unwrap()
        .ends_with("because no resource-based policy allows the ecr:BatchGetImage action"));
}

#[test]
fn allows_name_their_statements() {
    let allow = identity(&doc(&[
        r#""Sid":"Pull","Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*""#,
    ]));
    let repo = resource(&doc(&[
        r#""Sid":"Share","Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"ecr:*""#,
    ]))
    .with_name("repository policy of team/app");
    let policies = [&allow];
    let req = Request {
        identity_policies: &policies,
        resource_policy: Some(&repo),
        ..Request::new(Who::Bob.principal(), "ecr:BatchGetImage", REPO, ACCT)
    };
    let d = evaluate(&req);
    assert_eq!(d.reason, Reason::CrossAccountAllows);
    assert!(d.denial_message(&req).is_none());
    assert_eq!(d.statement.unwrap().sid(), Some("Pull"));
    assert_eq!(d.resource_statement.unwrap().sid(), Some("Share"));
    assert_eq!(
        d.to_string(),
        "allowed by identity-based policy statement \"Pull\" and resource-based policy \"repository policy of team/app\" statement \"Share\""
    );
    let root = evaluate(&Request::new(
        Who::Root.principal(),
        "ecr:PutImage",
        REPO,
        ACCT,
    ));
    assert_eq!(root.to_string(), "allowed: account root");
}

#[test]
fn anonymous_message_names_anonymous() {
    let req = Request::new(Who::Anonymous.principal(), "ecr:BatchGetImage", REPO, ACCT);
    let d = evaluate(&req);
    assert!(d
        .denial_message(&req)
        .unwrap()
        .starts_with("User: anonymous is not authorized"));
}

#[test]
fn compiled_policies_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<berth_iam::Policy>();
    shareable::<berth_iam::PolicyError>();
}

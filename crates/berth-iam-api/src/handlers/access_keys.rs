//! CreateAccessKey, DeleteAccessKey, ListAccessKeys, UpdateAccessKey.
//!
//! Without `UserName` these act on the caller's own keys, as in AWS: the user's, or the
//! account root's when the root signs (resolved in dispatch, [`crate::requirements`]). The secret is generated here and leaves the server
//! once, in the CreateAccessKey answer; the logs carry the key id only.

use berth_meta::iam::{AccessKeyRecord, KeyOwner, KeyStatus, NewAccessKey};

use super::Ctx;
use crate::error::IamApiError;
use crate::pagination::paginate;
use crate::params::{ACCESS_KEY_ID, MARKER, STATUS};
use crate::xml::Xml;

fn write_user_name(x: &mut Xml, k: &AccessKeyRecord) {
    // The root's keys have no user name (the model's member is absent for them).
    if let KeyOwner::User(name) = &k.owner {
        x.text("UserName", name);
    }
}

pub(super) async fn create_access_key(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let owner = ctx.key_owner()?;
    let key = NewAccessKey::generate();
    let record = ctx
        .store
        .create_access_key(ctx.account(), &owner, &key)
        .await?;
    tracing::info!(access_key_id = %record.access_key_id, owner = ?record.owner, "created access key");
    let mut x = Xml::new();
    x.open("AccessKey");
    write_user_name(&mut x, &record);
    x.text("AccessKeyId", &record.access_key_id)
        .text("Status", record.status.as_str())
        .text("SecretAccessKey", key.secret.expose())
        .date_ms("CreateDate", record.created_ms);
    x.close("AccessKey");
    Ok(x)
}

pub(super) async fn delete_access_key(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let id = ctx.params.required(ACCESS_KEY_ID)?;
    let owner = ctx.key_owner()?;
    ctx.store
        .delete_access_key(ctx.account(), &owner, id)
        .await?;
    tracing::info!(access_key_id = %id, owner = ?owner, "deleted access key");
    Ok(Xml::new())
}

pub(super) async fn update_access_key(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let id = ctx.params.required(ACCESS_KEY_ID)?;
    let status = ctx.params.required(STATUS)?;
    let status = KeyStatus::parse(status)
        .ok_or_else(|| IamApiError::Internal(format!("STATUS admitted {status:?}")))?;
    let owner = ctx.key_owner()?;
    ctx.store
        .update_access_key_status(ctx.account(), &owner, id, status)
        .await?;
    tracing::info!(access_key_id = %id, status = status.as_str(), "updated access key");
    Ok(Xml::new())
}

pub(super) async fn list_access_keys(ctx: &Ctx<'_>) -> Result<Xml, IamApiError> {
    let marker = ctx.params.optional(MARKER)?;
    let max = ctx.params.max_items()?;
    let owner = ctx.key_owner()?;
    let mut keys = ctx.store.list_access_keys(ctx.account(), &owner).await?;
    keys.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
    let page = paginate(keys, |k| k.access_key_id.as_str(), marker, max);
    let mut x = Xml::new();
    x.list("AccessKeyMetadata", &page.items, |x, k| {
        write_user_name(x, k);
        x.text("AccessKeyId", &k.access_key_id)
            .text("Status", k.status.as_str())
            .date_ms("CreateDate", k.created_ms);
    });
    page.write_tail(&mut x);
    Ok(x)
}

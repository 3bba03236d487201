//! `/admin/v1/keys`: the signing keys, and a rotation on demand (docs/keys.md).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::Problem;
use super::request::AdminRequest;
use super::KEYS_TAG;
use crate::admin::access::Need;
use crate::admin::keys;
use crate::admin::views::KeyView;
use crate::state::{unix_now, AppState};

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

/// The keys a rotation published; empty when every algorithm already had a next key.
#[derive(Serialize, ToSchema)]
pub struct Rotation {
    pub published: Vec<KeyView>,
}

#[utoipa::path(get, path = "/admin/v1/keys", tag = KEYS_TAG, operation_id = "listKeys",
    security(("admin_token" = ["latchkey:admin.read"])),
    responses((status = 200, body = KeyList), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
pub async fn list_keys(State(state): State<AppState>, request: AdminRequest) -> Result<Json<KeyList>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let all = keys::list(state.store()).await?;
    Ok(Json(KeyList { items: all.iter().map(KeyView::from).collect() }))
}

#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = KEYS_TAG, operation_id = "rotateKeys",
    security(("admin_token" = ["latchkey:admin"])),
    responses((status = 200, body = Rotation), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
pub async fn rotate_keys(State(state): State<AppState>, request: AdminRequest) -> Result<Json<Rotation>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let policy = state.settings().key_lifecycle();
    let published = keys::rotate(state.store(), state.master_key(), &policy, &caller.actor, unix_now()).await?;
    // This replica publishes the new keys at once; the others on their next reload.
    if let Err(e) = state.reload_keys().await {
        tracing::warn!(error = %e, "reloading the keys after a rotation failed; the next reload publishes them");
    }
    Ok(Json(Rotation { published: published.iter().map(KeyView::from).collect() }))
}

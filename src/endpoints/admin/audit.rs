//! `/admin/v1/audit-events`: the audit trail, newest first, filtered and a page at a time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::request::{query, AdminRequest};
use super::{cursor, uncursor, AUDIT_TAG};
use crate::admin::access::Need;
use crate::admin::views::AuditEventView;
use crate::audit::{kind, AuditFilter};
use crate::state::AppState;
use crate::store::AuditStore;

/// The most events one page holds.
const MAX_PAGE: i64 = 500;

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    /// Pass as `cursor` for older events; null when there are none.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's events (sub or email).
    pub user: Option<String>,
    /// Only events about this client.
    pub client_id: Option<String>,
    /// Only events of this kind, such as `sign_in.failed` (docs/operations.md).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/audit-events", tag = AUDIT_TAG, operation_id = "listAuditEvents",
    security(("admin_token" = ["latchkey:admin.read"])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    request: AdminRequest,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    if let Some(event) = &q.event {
        if !kind::ALL.contains(&event.as_str()) {
            return Err(Problem::bad_request(format!("unknown event type `{event}` (docs/operations.md lists them)")));
        }
    }
    let before_id = match q.cursor.as_deref().map(uncursor).transpose()? {
        Some(text) => Some(text.parse::<i64>().map_err(|_| Problem::bad_request("cursor is not one this API gave"))?),
        None => None,
    };
    let user_sub = match q.user.as_deref() {
        Some(user) => Some(crate::admin::users::show(state.store(), user).await?.sub),
        None => None,
    };
    let filter = AuditFilter { user_sub, client_id: q.client_id, event: q.event, before_id, limit: limit + 1 };
    let mut events = state.store().list_audit_events(&filter).await?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next_cursor = if more { events.last().map(|e| cursor(&e.id.to_string())) } else { None };
    Ok(Json(AuditPage { items: events.iter().map(AuditEventView::from).collect(), next_cursor }))
}

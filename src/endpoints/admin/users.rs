//! `/admin/v1/users` and `/admin/v1/invitations`: people, their roles, second factor, grants
//! and sessions. A user is named in the path by `sub` or by email address.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::request::{json_body, path, query, AdminRequest};
use super::{cursor, double_option, uncursor, USERS_TAG};
use crate::admin::access::Need;
use crate::admin::users::{self, NewInvitation, NewUser};
use crate::admin::views::{GrantView, SessionView, UserView};
use crate::state::{unix_now, AppState};

/// One page of users, in email order.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only users whose email starts with this (case-insensitive).
    pub search: Option<String>,
    /// At most this many (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A person to create; the password is checked against the password policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "name": "Ann", "roles": ["staff"],
    "password": "correct horse battery staple", "email_verified": true}))]
pub struct CreateUserRequest {
    #[schema(format = "email")]
    pub email: String,
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub password: String,
    /// The address is known to be the user's: `email_verified` is true in their tokens.
    #[serde(default)]
    pub email_verified: bool,
}

/// A change to a user: `name` (null removes it) and `roles` (replaces them).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
}

/// A new password; the user's sessions and grants end.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "a new long passphrase"}))]
pub struct SetPasswordRequest {
    pub password: String,
}

/// A person to invite: the account is created and a link to set its password is emailed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ivy@example.com", "name": "Ivy", "roles": []}))]
pub struct InvitationRequest {
    #[schema(format = "email")]
    pub email: String,
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub user: UserView,
    pub invitation_expires_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MfaReset {
    pub sub: String,
    pub email: String,
    /// Whether the user had a second factor to remove.
    pub had_mfa: bool,
}

#[derive(Serialize, ToSchema)]
pub struct GrantList {
    pub items: Vec<GrantView>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionView>,
}

#[utoipa::path(get, path = "/admin/v1/users", tag = USERS_TAG, operation_id = "listUsers",
    security(("admin_token" = ["latchkey:admin.read"])), params(UserQuery),
    responses((status = 200, body = UserPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    request: AdminRequest,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<UserPage>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=users::MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and {}", users::MAX_PAGE)));
    }
    let after = q.cursor.as_deref().map(uncursor).transpose()?;
    let (page, next) = users::page(state.store(), q.search.as_deref(), after.as_deref(), limit).await?;
    Ok(Json(UserPage { items: page.iter().map(UserView::from).collect(), next_cursor: next.as_deref().map(cursor) }))
}

#[utoipa::path(post, path = "/admin/v1/users", tag = USERS_TAG, operation_id = "createUser",
    security(("admin_token" = ["latchkey:admin"])), request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    request: AdminRequest,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let u: CreateUserRequest = json_body(&headers, body)?;
    let new = NewUser {
        email: u.email,
        name: u.name,
        roles: u.roles,
        password: u.password,
        email_verified: u.email_verified,
    };
    let user = users::create(state.store(), state.passwords(), new, &caller.actor, unix_now()).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

#[utoipa::path(get, path = "/admin/v1/users/{sub}", tag = USERS_TAG, operation_id = "getUser",
    security(("admin_token" = ["latchkey:admin.read"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
) -> Result<Json<UserView>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let user = path(user)?;
    Ok(Json(UserView::from(&users::show(state.store(), &user).await?)))
}

#[utoipa::path(patch, path = "/admin/v1/users/{sub}", tag = USERS_TAG, operation_id = "updateUser",
    security(("admin_token" = ["latchkey:admin"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UserView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let user = path(user)?;
    let u: UpdateUserRequest = json_body(&headers, body)?;
    let changes = users::UserChanges { name: u.name, roles: u.roles };
    let updated = users::update(state.store(), &user, changes, &caller.actor, unix_now()).await?;
    Ok(Json(UserView::from(&updated)))
}

#[utoipa::path(post, path = "/admin/v1/users/{sub}/password", tag = USERS_TAG, operation_id = "setUserPassword",
    security(("admin_token" = ["latchkey:admin"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    request_body = SetPasswordRequest,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn set_password(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UserView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let user = path(user)?;
    let p: SetPasswordRequest = json_body(&headers, body)?;
    let updated =
        users::set_password(state.store(), state.passwords(), &user, &p.password, &caller.actor, unix_now()).await?;
    Ok(Json(UserView::from(&updated)))
}

#[utoipa::path(post, path = "/admin/v1/users/{sub}/disable", tag = USERS_TAG, operation_id = "disableUser",
    security(("admin_token" = ["latchkey:admin"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn disable_user(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
) -> Result<Json<UserView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let user = path(user)?;
    Ok(Json(UserView::from(&users::disable(state.store(), &user, &caller.actor, unix_now()).await?)))
}

#[utoipa::path(put, path = "/admin/v1/users/{sub}/roles/{role}", tag = USERS_TAG, operation_id = "addUserRole",
    security(("admin_token" = ["latchkey:admin"])),
    params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)"), ("role" = String, Path)),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn add_role(
    State(state): State<AppState>,
    request: AdminRequest,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<UserView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let (user, role) = path(params)?;
    let updated = users::change_roles(state.store(), &user, Some(&role), None, &caller.actor, unix_now()).await?;
    Ok(Json(UserView::from(&updated)))
}

#[utoipa::path(delete, path = "/admin/v1/users/{sub}/roles/{role}", tag = USERS_TAG,
    operation_id = "removeUserRole", security(("admin_token" = ["latchkey:admin"])),
    params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)"), ("role" = String, Path)),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn remove_role(
    State(state): State<AppState>,
    request: AdminRequest,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<UserView>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let (user, role) = path(params)?;
    let updated = users::change_roles(state.store(), &user, None, Some(&role), &caller.actor, unix_now()).await?;
    Ok(Json(UserView::from(&updated)))
}

#[utoipa::path(delete, path = "/admin/v1/users/{sub}/mfa", tag = USERS_TAG, operation_id = "resetUserMfa",
    security(("admin_token" = ["latchkey:admin"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    responses((status = 200, body = MfaReset), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
) -> Result<Json<MfaReset>, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let user = path(user)?;
    let (user, had_mfa) = users::reset_mfa(state.store(), &user, &caller.actor, unix_now()).await?;
    Ok(Json(MfaReset { sub: user.sub, email: user.email, had_mfa }))
}

#[utoipa::path(get, path = "/admin/v1/users/{sub}/grants", tag = USERS_TAG, operation_id = "listUserGrants",
    security(("admin_token" = ["latchkey:admin.read"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    responses((status = 200, body = GrantList), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn list_grants(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
) -> Result<Json<GrantList>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let user = path(user)?;
    let (_, grants) = users::grants(state.store(), &user, unix_now()).await?;
    Ok(Json(GrantList { items: grants.iter().map(GrantView::from).collect() }))
}

#[utoipa::path(delete, path = "/admin/v1/users/{sub}/grants/{grant_id}", tag = USERS_TAG,
    operation_id = "revokeUserGrant", security(("admin_token" = ["latchkey:admin"])),
    params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)"), ("grant_id" = String, Path)),
    responses((status = 204, description = "Revoked: its refresh tokens and access tokens stop working"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn revoke_grant(
    State(state): State<AppState>,
    request: AdminRequest,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let (user, grant_id) = path(params)?;
    users::revoke_grant(state.store(), &user, &grant_id, &caller.actor, unix_now()).await?;
    state.wake_outbox();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/users/{sub}/sessions", tag = USERS_TAG, operation_id = "listUserSessions",
    security(("admin_token" = ["latchkey:admin.read"])), params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)")),
    responses((status = 200, body = SessionList), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    request: AdminRequest,
    user: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionList>, Problem> {
    request.authorize(&state, Need::Read).await?;
    let user = path(user)?;
    let (_, sessions) = users::sessions(state.store(), &user, unix_now()).await?;
    Ok(Json(SessionList { items: sessions.iter().map(SessionView::from).collect() }))
}

#[utoipa::path(delete, path = "/admin/v1/users/{sub}/sessions/{session_id}", tag = USERS_TAG,
    operation_id = "endUserSession", security(("admin_token" = ["latchkey:admin"])),
    params(("sub" = String, Path, description = "the user's sub (an email address is accepted too)"), ("session_id" = String, Path)),
    responses((status = 204, description = "Ended, with the grants given in it"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn end_session(
    State(state): State<AppState>,
    request: AdminRequest,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let (user, session_id) = path(params)?;
    users::end_session(state.store(), &user, &session_id, &caller.actor, unix_now()).await?;
    state.wake_outbox();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/invitations", tag = USERS_TAG, operation_id = "inviteUser",
    security(("admin_token" = ["latchkey:admin"])), request_body = InvitationRequest,
    responses((status = 201, body = Invitation), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn invite(
    State(state): State<AppState>,
    request: AdminRequest,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let caller = request.authorize(&state, Need::Write).await?;
    let i: InvitationRequest = json_body(&headers, body)?;
    let now = unix_now();
    let settings = state.account_settings();
    let new = NewInvitation { email: i.email, name: i.name, roles: i.roles };
    let user =
        users::invite(state.store(), state.passwords(), &state.letters(), settings, new, &caller.actor, now).await?;
    state.wake_outbox();
    let invitation = Invitation { user: UserView::from(&user), invitation_expires_at: now + settings.invitation_ttl };
    Ok((StatusCode::CREATED, Json(invitation)).into_response())
}

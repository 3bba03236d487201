use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use tower_sessions::Session;

use super::pages::{render, unavailable};
use super::session;
use crate::state::AppState;
use crate::store::UserStore;

/// `GET /`: who is signed in, if anyone.
pub async fn home(State(state): State<AppState>, session: Session) -> Response {
    let user = match session::signed_in(&state, &session).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let user_email = match user {
        Some(u) => match state.store().find_user(&u.sub).await {
            Ok(found) => found.map(|u| u.email),
            // Not "signed out": that would be a wrong answer, not an unavailable one.
            Err(e) => return unavailable(&state, &e),
        },
        None => None,
    };
    render(&state, StatusCode::OK, "home.html", context! { user_email })
}

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::cors;
use super::headers::security_headers;
use super::page_errors::{rejections_as_pages, session_save_failures};
use super::paths;
use crate::endpoints;
use crate::state::AppState;
use crate::store::DbSessionStore;
use crate::web;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Longest a request may take before the client gets a 408; bounds slow-loris style requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `/metrics` on the main listener, or — with `metrics_bind` set — nothing here (a 404; it is
/// served on its own listener, [`metrics_only`]).
fn metrics_route(state: &AppState) -> Router<AppState> {
    let router = Router::new();
    if state.settings().metrics_bind.is_some() {
        router
    } else {
        router.route(paths::METRICS, get(endpoints::metrics::metrics))
    }
}

/// The router of the `metrics_bind` listener: `/metrics` alone.
pub fn metrics_only(state: AppState) -> Router {
    Router::new().route(paths::METRICS, get(endpoints::metrics::metrics)).with_state(state)
}

/// Requests by method, route pattern and status, with their latency (issue 13 item 4). The
/// route is the pattern the router matched, never the raw path, and unknown methods are
/// `OTHER`, so the label sets stay few whatever clients send.
async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "OPTIONS" | "HEAD" | "PUT" | "DELETE" | "PATCH") => m,
        _ => "OTHER",
    }
    .to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::metrics::count_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

pub fn build(state: AppState) -> Router {
    let https = state.settings().issuer.starts_with("https://");
    let max_body = state.settings().max_body_bytes;
    // Browser-facing routes get the session; API routes never set a cookie.
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.store().clone()))
        // RFC 6265bis §4.1.3.2: with https the __Host- prefix pins the cookie to this host, path /.
        .with_name(if https { "__Host-latchkey" } else { "latchkey_session" })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(state.settings().session_idle_ttl.as_secs())));
    let pages = Router::new()
        .route(paths::HOME, get(web::home::home))
        .route(paths::AUTHORIZE, get(endpoints::authorize::authorize).post(endpoints::authorize::authorize))
        .route(paths::AUTHORIZE_CONTINUE, get(endpoints::authorize::resume_pending))
        .route(paths::LOGIN, get(web::login::show).post(web::login::submit))
        .route(paths::LOGIN_MFA, get(web::mfa::show).post(web::mfa::submit))
        .route(paths::ACCOUNT, get(web::account::show))
        .route(paths::ACCOUNT_PASSWORD, post(web::account::change_password))
        .route(paths::ACCOUNT_TOTP, get(web::account::totp_setup).post(web::account::totp_confirm))
        .route(paths::ACCOUNT_TOTP_REMOVE, post(web::account::totp_remove))
        .route(
            paths::ACCOUNT_RECOVERY_CODES,
            get(web::account::show_recovery_codes).post(web::account::new_recovery_codes),
        )
        .route(paths::ACCOUNT_APPS_REVOKE, post(web::account::revoke_app))
        .route(paths::ACCOUNT_EMAIL, post(web::email_change::request))
        .route(paths::ACCOUNT_VERIFY_EMAIL, post(web::email_change::send_verification))
        .route(paths::CONFIRM_EMAIL_CHANGE, get(web::email_change::confirm_page).post(web::email_change::confirm))
        .route(paths::REGISTER, get(web::register::show).post(web::register::submit))
        .route(paths::CHECK_EMAIL, get(web::register::check_email))
        .route(paths::VERIFY_EMAIL, get(web::register::verify_page).post(web::register::verify))
        .route(paths::VERIFY_EMAIL_RESEND, post(web::register::resend))
        .route(paths::FORGOT_PASSWORD, get(web::reset::show).post(web::reset::submit))
        .route(paths::RESET_PASSWORD, get(web::reset::reset_page).post(web::reset::reset))
        .route(paths::INVITATION, get(web::invitation::show).post(web::invitation::accept))
        .route(paths::CONSENT, get(web::consent::show).post(web::consent::submit))
        .route(paths::LOGOUT, get(web::logout::logout).post(web::logout::logout))
        .layer(sessions)
        // Outside the session layer, to see its answer when saving the session failed.
        .layer(axum::middleware::from_fn_with_state(state.clone(), session_save_failures))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rejections_as_pages));
    // Discovery and the JWKS: readable from any origin (issue 11 item 1).
    let public_documents = Router::new()
        .route(paths::DISCOVERY, get(endpoints::discovery::metadata))
        .route(paths::AUTHORIZATION_SERVER_METADATA, get(endpoints::discovery::metadata))
        .route(paths::JWKS, get(endpoints::jwks::jwks))
        .route_layer(axum::middleware::from_fn(cors::public_documents));
    let mut router = Router::new()
        .merge(pages)
        .route(paths::STYLESHEET, get(web::assets::stylesheet))
        .merge(public_documents)
        .route(paths::TOKEN, post(endpoints::token::token).options(cors::preflight))
        .route(
            paths::USERINFO,
            get(endpoints::userinfo::userinfo).post(endpoints::userinfo::userinfo).options(cors::preflight),
        )
        .route(paths::REVOKE, post(endpoints::revoke::revoke).options(cors::preflight))
        .route(paths::INTROSPECT, post(endpoints::introspect::introspect))
        // The admin API (issue 13): bearer tokens only, no cookies, no CORS (browsers never call it).
        .merge(endpoints::admin::router(&state.settings().issuer).0)
        .route(paths::HEALTHZ, get(endpoints::health::healthz))
        .merge(metrics_route(&state))
        .route(paths::READYZ, get(endpoints::health::readyz))
        .fallback(endpoints::not_found)
        .layer(axum::middleware::from_fn(count_requests))
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT));
    for layer in security_headers(https) {
        router = router.layer(layer);
    }
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
    )
}

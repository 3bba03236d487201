//! The admin REST API under `/admin/v1` (issue 13 items 1–2): JSON over HTTP for everything
//! the CLI does, through the same service layer (`crate::admin`). Callers authenticate with a
//! client credentials access token for the admin API's audience (`crate::admin::access`);
//! errors are RFC 9457 problem details ([`problem`]).
//!
//! Each route is registered with utoipa-axum's router together with its `#[utoipa::path]`
//! documentation, so the OpenAPI 3.1 document served at `/admin/v1/openapi.json` is made
//! from the very handlers that serve the API and cannot drift from it.

mod audit;
mod clients;
mod keys;
pub mod problem;
mod request;
mod users;

use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::security::{ClientCredentials, Flow, OAuth2, Scopes, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{ADMIN_READ_SCOPE, ADMIN_SCOPE};
use crate::state::AppState;
use problem::Problem;

pub const OPENAPI_PATH: &str = "/admin/v1/openapi.json";

const CLIENTS_TAG: &str = "clients";
const USERS_TAG: &str = "users";
const KEYS_TAG: &str = "keys";
const AUDIT_TAG: &str = "audit";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey admin API",
        description = "Manage clients, users, signing keys and the audit trail of a Latchkey \
            OAuth 2.0 / OpenID Connect provider. Authenticate with an access token from the \
            client credentials grant with scope `latchkey:admin` (read and write) or \
            `latchkey:admin.read` (read only); docs/admin-api.md shows how. Errors are RFC 9457 \
            problem details. Times are Unix seconds.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "clients", description = "Apps, services and resource servers"),
        (name = "users", description = "People, their roles, second factor, grants and sessions"),
        (name = "keys", description = "Signing keys"),
        (name = "audit", description = "The audit trail")
    )
)]
struct ApiDoc;

/// `Some(None)` for an explicit JSON `null`, `None` for an absent field (with
/// `#[serde(default)]`): PATCH tells "clear it" from "leave it".
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Page cursors are opaque: base64url of where the page ended.
fn cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

fn uncursor(cursor: &str) -> Result<String, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Problem::bad_request("cursor is not one this API gave"))
}

/// Error answers are `application/problem+json` (RFC 9457 §3); the path macros declare their
/// body type, and this gives each the right media type.
fn problems_as_problem_json(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                if status.starts_with('2') {
                    continue;
                }
                if let Some(content) = response.content.shift_remove("application/json") {
                    response.content.insert("application/problem+json".to_string(), content);
                }
            }
        }
    }
}

/// The document's parts known only at run time: where the API is and where tokens come from.
fn complete(mut doc: utoipa::openapi::OpenApi, issuer: &str) -> utoipa::openapi::OpenApi {
    problems_as_problem_json(&mut doc);
    let issuer = issuer.trim_end_matches('/');
    doc.servers = Some(vec![Server::new(issuer)]);
    let scopes = Scopes::from_iter([
        (ADMIN_SCOPE, "Read and change everything the admin API offers"),
        (ADMIN_READ_SCOPE, "Read only"),
    ]);
    let flow = Flow::ClientCredentials(ClientCredentials::new(format!("{issuer}/token"), scopes));
    let mut scheme = OAuth2::new([flow]);
    scheme.description = Some(format!(
        "A client credentials access token for audience {}: register a client with \
         `latchkey client create --name ops --scope {ADMIN_SCOPE}`",
        crate::admin::access::admin_audience(issuer)
    ));
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("admin_token", SecurityScheme::OAuth2(scheme));
    doc
}

/// The routes of the admin API and its OpenAPI document.
pub fn router(issuer: &str) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(clients::list_clients, clients::create_client))
        .routes(routes!(clients::get_client, clients::update_client, clients::delete_client))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(clients::disable_client))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::set_password))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::add_role, users::remove_role))
        .routes(routes!(users::reset_mfa))
        .routes(routes!(users::list_grants))
        .routes(routes!(users::revoke_grant))
        .routes(routes!(users::list_sessions))
        .routes(routes!(users::end_session))
        .routes(routes!(users::invite))
        .routes(routes!(keys::list_keys))
        .routes(routes!(keys::rotate_keys))
        .routes(routes!(audit::list_events))
        .split_for_parts();
    let doc = complete(doc, issuer);
    let json = Bytes::from(doc.to_json().unwrap_or_default());
    let router = router.route(
        OPENAPI_PATH,
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response() }
        }),
    );
    // Anything else under /admin/v1 is a problem too, not the site-wide 404.
    let router = router.route(
        "/admin/v1/{*rest}",
        axum::routing::any(|| async {
            Problem::new(axum::http::StatusCode::NOT_FOUND, "no such admin API operation (see /admin/v1/openapi.json)")
        }),
    );
    // Answers carry secrets and personal data: never cached (RFC 9111 §5.2.2.5).
    let router = router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    (router, doc)
}

/// The OpenAPI document of an installation with this issuer (for `latchkey openapi` and tests).
pub fn openapi_json(issuer: &str) -> String {
    router(issuer).1.to_pretty_json().unwrap_or_default()
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Integration tests: the real server on a random port with a fresh database, driven over HTTP
//! by real clients. The backend is SQLite unless TEST_DATABASE_URL names a Postgres server, in
//! which case every test gets a new database there. All tests compile into this one binary.

mod helpers;

mod admin_api;
mod admin_schemathesis;
mod apply;
mod audit;
mod authorize_errors;
mod authorize_hint;
mod backchannel_logout;
mod browser;
mod cli;
mod client_disable;
mod client_update;
mod connections;
mod cors;
mod csrf;
mod discovery;
mod docs;
mod email_change;
mod health;
mod introspection;
mod invitations;
mod jwks;
mod key_rotation;
mod keys_startup;
mod layering;
mod mailbox;
mod malformed_input;
mod metrics;
mod mfa;
mod oidc_flow;
mod outage;
mod outbox;
mod pages;
mod password_reset;
mod private_key_jwt;
mod query_plans;
mod refresh_grace;
mod revocation;
pub mod shutdown;
mod sign_up;
mod single_use;
mod throttling;
mod token_client_credentials;
mod token_code_grant;
mod token_errors;
mod userinfo;

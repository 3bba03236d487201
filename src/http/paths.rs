//! The one path table: the router and the discovery document both read these.

pub const DISCOVERY: &str = "/.well-known/openid-configuration";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/.well-known/jwks.json";
pub const TOKEN: &str = "/token";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const AUTHORIZE: &str = "/authorize";
pub const AUTHORIZE_CONTINUE: &str = "/authorize/continue";
pub const HOME: &str = "/";
pub const STYLESHEET: &str = "/assets/latchkey.css";
pub const USERINFO: &str = "/userinfo";
/// RFC 7009 token revocation.
pub const REVOKE: &str = "/revoke";
/// RFC 7662 token introspection.
pub const INTROSPECT: &str = "/introspect";
pub const LOGIN: &str = "/login";
pub const CONSENT: &str = "/consent";
pub const LOGOUT: &str = "/logout";
pub const LOGIN_MFA: &str = "/login/mfa";
pub const ACCOUNT: &str = "/account";
pub const ACCOUNT_PASSWORD: &str = "/account/password";
pub const ACCOUNT_TOTP: &str = "/account/totp";
pub const ACCOUNT_TOTP_REMOVE: &str = "/account/totp/remove";
pub const ACCOUNT_RECOVERY_CODES: &str = "/account/recovery-codes";
pub const ACCOUNT_APPS_REVOKE: &str = "/account/apps/revoke";
/// Issue 12: self-service accounts.
pub const REGISTER: &str = "/register";
pub const CHECK_EMAIL: &str = "/check-email";
pub const VERIFY_EMAIL: &str = "/verify-email";
pub const VERIFY_EMAIL_RESEND: &str = "/verify-email/resend";
pub const FORGOT_PASSWORD: &str = "/forgot-password";
pub const RESET_PASSWORD: &str = "/reset-password";
pub const INVITATION: &str = "/invitation";
pub const CONFIRM_EMAIL_CHANGE: &str = "/confirm-email-change";
pub const ACCOUNT_EMAIL: &str = "/account/email";
pub const ACCOUNT_VERIFY_EMAIL: &str = "/account/verify-email";
/// Issue 13 item 4: the Prometheus scrape.
pub const METRICS: &str = "/metrics";

//! The `latchkey` command: serve, migrate, and the admin commands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use latchkey::accounts::{AccountSettings, Letters};
use latchkey::admin::actor::{self, Actor, Subject};
use latchkey::admin::clients::{self, client_json};
use latchkey::admin::keys as admin_keys;
use latchkey::admin::users::{self, user_json, NewInvitation, NewUser};
use latchkey::admin::views::KeyView;
use latchkey::audit::{kind, AuditFilter};
use latchkey::authn::PasswordHasher;
use latchkey::config::{LogFormat, Settings};
use latchkey::domain::KeyRecord;
use latchkey::domain::NewClient;
use latchkey::startup::{load_master_key, open_store, shutdown_signal, Application};
use latchkey::state::unix_now;
use latchkey::store::{AuditStore, ClientStore, KeyStore, UserStore};
use latchkey::web::templates::Templates;
use serde_json::json;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "An OAuth 2.0 / OpenID Connect provider")]
struct Cli {
    /// TOML settings file (settings are documented in docs/configuration.md).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider (migrates the database and creates signing keys on first start).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Register and manage clients (apps and services).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the people who sign in.
    #[command(subcommand)]
    User(UserCommand),
    /// Signing keys: list, rotate on demand, revoke in an emergency (docs/keys.md).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make the database match a declaration file (TOML): clients with stable ids, scope
    /// descriptions, roles and users' roles (docs/apply.md). Prints each change; applying the
    /// same file again changes nothing.
    Apply {
        /// The declaration file.
        file: PathBuf,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete the clients, scope descriptions and roles the file does not declare.
        #[arg(long)]
        prune: bool,
    },
    /// Print the admin API's OpenAPI 3.1 document (as served at /admin/v1/openapi.json) for
    /// this configuration's issuer, e.g. to generate a client without a running server.
    Openapi,
    /// Recent security events (newest first) as a JSON array.
    Audit {
        /// Only this user's events (sub or email).
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// Only events of this type, such as sign_in.failed (see docs/operations.md).
        #[arg(long = "type")]
        event: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every published key: kid, algorithm, status and its times.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a successor for each algorithm now; it signs after `key_publish_ahead`.
    Rotate,
    /// Emergency: remove a compromised key at once. Tokens it signed stop verifying; if it was
    /// signing, a new key signs immediately (resource servers must refetch the JWKS).
    Revoke {
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Confirms that you understand the consequences (without it nothing happens).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// A role carried in the user's tokens with the `roles` scope; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The address is known to be the user's: `email_verified` is true in their tokens.
        #[arg(long)]
        email_verified: bool,
    },
    /// Invite a person by email: the account is created and a link to set its password is sent
    /// (by the running server, through the outbox). Inviting again before they accept sends a
    /// new link and voids the old one. Works whatever `registration` says.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// A role carried in the user's tokens with the `roles` scope; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List every user as a JSON array.
    List,
    /// Show one user (by sub or email) as JSON.
    Show {
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Set a new password (from standard input); ends the user's sessions and grants.
    SetPassword {
        #[arg(allow_hyphen_values = true)]
        user: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Stop a user from signing in; ends their sessions and grants.
    Disable {
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Give a user a role (carried in tokens with the `roles` scope).
    AddRole {
        #[arg(allow_hyphen_values = true)]
        user: String,
        role: String,
    },
    /// Take a role away from a user.
    RemoveRole {
        #[arg(allow_hyphen_values = true)]
        user: String,
        role: String,
    },
    /// Remove a user's authenticator app and recovery codes (lost phone); they sign in with
    /// the password alone and can enrol again. Recorded in the audit trail.
    MfaReset {
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints it as JSON, with the secret shown this one time.
    Create(Box<CreateClient>),
    /// Change a client in place (same client_id and secret), validated like `create`; prints it
    /// as JSON. Replicas see the change within `client_cache_ttl`.
    Update(Box<UpdateClient>),
    /// List every client as a JSON array.
    List,
    /// Show one client as JSON.
    Show {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Replace a confidential client's secret; prints the new one.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Stop a client from getting tokens; ends its grants (its users' tokens stop at userinfo,
    /// its refresh tokens stop working).
    Disable {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Remove a client for good; ends its grants and forgets the consents given to it.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Args)]
struct CreateClient {
    /// Shown to users on the consent page.
    #[arg(long)]
    name: String,
    /// Exact redirect URI; repeat for several.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Exact URI to return to after logout; repeat for several.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token or client_credentials; repeat for several. `none`
    /// alone: no grant types (a resource server that only introspects).
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// A scope the client may be granted; repeat for several.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A role carried in the client's tokens; repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// `aud` of this client's access tokens (default: the `default_audience` setting).
    #[arg(long)]
    audience: Option<String>,
    /// How this app's ID tokens are signed: RS256 (default) or ES256.
    #[arg(long)]
    id_token_alg: Option<String>,
    /// A browser origin (scheme://host[:port]) that may read the token, userinfo and revocation
    /// answers, besides the origins of the redirect URIs; repeat for several.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// A client that can't keep a secret (browser or native app); uses PKCE alone.
    #[arg(long)]
    public: bool,
    /// Your own app: users are not asked for consent.
    #[arg(long)]
    first_party: bool,
    /// Every sign-in for this app needs a second factor; users without one enrol first.
    #[arg(long)]
    require_mfa: bool,
    /// May call /introspect (RFC 7662) for tokens whose audience is its --audience or its
    /// client_id: a resource server. Without --redirect-uri or --grant-type it gets no grant
    /// types at all (`--grant-type none` says so explicitly).
    #[arg(long)]
    introspect: bool,
    /// Where Latchkey POSTs a logout token when a session this app signed into ends
    /// (OpenID Connect Back-Channel Logout 1.0): https, or http on localhost.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// The app needs `sid` (the session id of its ID tokens) in logout tokens.
    #[arg(long)]
    backchannel_logout_session_required: bool,
    /// private_key_jwt (RFC 7523): a file with the client's public keys as a JWKS (RSA or
    /// P-256); the client gets no secret and signs assertions instead.
    #[arg(long, conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    /// private_key_jwt with the keys fetched from this https URL (cached, refetched for an
    /// unknown key id).
    #[arg(long)]
    jwks_uri: Option<String>,
}

#[derive(Args)]
struct UpdateClient {
    #[arg(allow_hyphen_values = true)]
    client_id: String,
    /// A new name (shown to users on the consent page).
    #[arg(long)]
    name: Option<String>,
    /// Register another exact redirect URI; repeat for several.
    #[arg(long = "add-redirect-uri")]
    add_redirect_uris: Vec<String>,
    /// Unregister a redirect URI (exactly as registered); repeat for several.
    #[arg(long = "remove-redirect-uri")]
    remove_redirect_uris: Vec<String>,
    #[arg(long = "add-post-logout-redirect-uri")]
    add_post_logout_redirect_uris: Vec<String>,
    #[arg(long = "remove-post-logout-redirect-uri")]
    remove_post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token or client_credentials.
    #[arg(long = "add-grant-type")]
    add_grant_types: Vec<String>,
    #[arg(long = "remove-grant-type")]
    remove_grant_types: Vec<String>,
    #[arg(long = "add-scope")]
    add_scopes: Vec<String>,
    #[arg(long = "remove-scope")]
    remove_scopes: Vec<String>,
    #[arg(long = "add-role")]
    add_roles: Vec<String>,
    #[arg(long = "remove-role")]
    remove_roles: Vec<String>,
    /// A browser origin (scheme://host[:port]) allowed to read this client's answers (CORS).
    #[arg(long = "add-allowed-origin")]
    add_allowed_origins: Vec<String>,
    #[arg(long = "remove-allowed-origin")]
    remove_allowed_origins: Vec<String>,
    /// A new `aud` for this client's access tokens.
    #[arg(long, conflicts_with = "no_audience")]
    audience: Option<String>,
    /// Drop the client's own audience: its tokens get `default_audience` again.
    #[arg(long)]
    no_audience: bool,
    /// RS256 or ES256.
    #[arg(long)]
    id_token_alg: Option<String>,
    /// true: users are not asked for consent; false: they are.
    #[arg(long)]
    first_party: Option<bool>,
    /// true: every sign-in for this app needs a second factor.
    #[arg(long)]
    require_mfa: Option<bool>,
    /// true: may call /introspect for tokens meant for it (a resource server).
    #[arg(long)]
    introspect: Option<bool>,
    /// A new back-channel logout URI.
    #[arg(long, conflicts_with = "no_backchannel_logout")]
    backchannel_logout_uri: Option<String>,
    /// Stop sending logout tokens to this app.
    #[arg(long)]
    no_backchannel_logout: bool,
    /// true: logout tokens must carry `sid`.
    #[arg(long)]
    backchannel_logout_session_required: Option<bool>,
    /// New public keys (a JWKS file) for a private_key_jwt client.
    #[arg(long, conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    /// A new JWKS URL for a private_key_jwt client.
    #[arg(long)]
    jwks_uri: Option<String>,
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn run_client(settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let now = unix_now();
    let result = match command {
        ClientCommand::Create(c) => {
            let c = *c;
            let request = NewClient {
                name: c.name,
                public: c.public,
                first_party: c.first_party,
                require_mfa: c.require_mfa,
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                grant_types: c.grant_types,
                scopes: c.scopes,
                roles: c.roles,
                audience: c.audience,
                id_token_alg: c.id_token_alg,
                allowed_origins: c.allowed_origins,
                introspect: c.introspect,
                backchannel_logout_uri: c.backchannel_logout_uri,
                backchannel_logout_session_required: c.backchannel_logout_session_required,
                jwks: c.jwks_file.as_deref().map(read_jwks_file).transpose()?,
                jwks_uri: c.jwks_uri,
            };
            let (client, secret) = clients::create(&store, request, &Actor::Cli, now).await?;
            let mut value = client_json(&client);
            if let (Some(secret), Some(map)) = (secret, value.as_object_mut()) {
                map.insert("client_secret".into(), json!(secret));
            }
            print_json(&value)
        }
        ClientCommand::Update(u) => {
            let changes = clients::ClientUpdate {
                name: u.name,
                add_redirect_uris: u.add_redirect_uris,
                remove_redirect_uris: u.remove_redirect_uris,
                add_post_logout_redirect_uris: u.add_post_logout_redirect_uris,
                remove_post_logout_redirect_uris: u.remove_post_logout_redirect_uris,
                add_grant_types: u.add_grant_types,
                remove_grant_types: u.remove_grant_types,
                add_scopes: u.add_scopes,
                remove_scopes: u.remove_scopes,
                add_roles: u.add_roles,
                remove_roles: u.remove_roles,
                add_allowed_origins: u.add_allowed_origins,
                remove_allowed_origins: u.remove_allowed_origins,
                audience: if u.no_audience { Some(None) } else { u.audience.map(Some) },
                id_token_alg: u.id_token_alg,
                first_party: u.first_party,
                require_mfa: u.require_mfa,
                introspect: u.introspect,
                backchannel_logout_uri: if u.no_backchannel_logout {
                    Some(None)
                } else {
                    u.backchannel_logout_uri.map(Some)
                },
                backchannel_logout_session_required: u.backchannel_logout_session_required,
                jwks: u.jwks_file.as_deref().map(read_jwks_file).transpose()?,
                jwks_uri: u.jwks_uri,
            };
            let (client, _) = clients::update(&store, &u.client_id, changes, &Actor::Cli, now).await?;
            print_json(&client_json(&client))
        }
        ClientCommand::List => {
            let all = store.list_clients().await?;
            print_json(&serde_json::Value::Array(all.iter().map(client_json).collect()))
        }
        ClientCommand::Show { client_id } => print_json(&client_json(&clients::show(&store, &client_id).await?)),
        ClientCommand::RotateSecret { client_id } => {
            let secret = clients::rotate_secret(&store, &client_id, &Actor::Cli, now).await?;
            print_json(&json!({"client_id": client_id, "client_secret": secret}))
        }
        ClientCommand::Disable { client_id } => {
            clients::disable(&store, &client_id, &Actor::Cli, now).await?;
            print_json(&json!({"client_id": client_id, "disabled": true}))
        }
        ClientCommand::Delete { client_id } => {
            clients::delete(&store, &client_id, &Actor::Cli, now).await?;
            print_json(&json!({"client_id": client_id, "deleted": true}))
        }
    };
    store.close().await;
    result
}

async fn run_apply(settings: &Settings, file: &std::path::Path, dry_run: bool, prune: bool) -> anyhow::Result<()> {
    use latchkey::admin::apply::{self, Change};
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let declared = apply::parse(&text)?;
    let base = file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let store = open_store(settings).await?;
    let now = unix_now();
    let env = |name: &str| std::env::var(name).ok();
    let result = async {
        let plan = apply::plan(&store, declared, &base, &env, prune, now).await?;
        let mut out = std::io::stdout().lock();
        if plan.changes.is_empty() {
            writeln!(out, "no changes")?;
            return Ok(());
        }
        for change in &plan.changes {
            writeln!(out, "{}{change}", if dry_run { "would: " } else { "" })?;
        }
        drop(out);
        if dry_run {
            return Ok(());
        }
        apply::apply(&store, &plan, now).await?;
        for change in &plan.changes {
            let (kind, client) = match change {
                Change::CreateClient { id } => (kind::CLIENT_CREATED, id),
                Change::UpdateClient { id, .. } => (kind::CLIENT_UPDATED, id),
                Change::DeleteClient { id } => (kind::CLIENT_DELETED, id),
                _ => continue,
            };
            let detail = json!({ "change": change.to_string() });
            actor::record(&store, &Actor::Apply, kind, Subject::Client(client), detail, now).await;
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}

/// A client's JWKS file (`--jwks-file`), read whole but never more than the size Latchkey keeps.
fn read_jwks_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if text.len() > latchkey::domain::MAX_JWKS_BYTES {
        anyhow::bail!("{} is larger than {} bytes", path.display(), latchkey::domain::MAX_JWKS_BYTES);
    }
    Ok(text)
}

/// One line from standard input, without its line ending; nothing else is trimmed, so
/// passwords with spaces at either end survive.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(password)
}

async fn run_user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let hasher = PasswordHasher::new(&settings.password_settings())?;
    let now = unix_now();
    let result = match command {
        UserCommand::Create { email, name, roles, password_stdin: _, email_verified } => {
            let password = read_password()?;
            let new = NewUser { email, name, roles, password, email_verified };
            let user = users::create(&store, &hasher, new, &Actor::Cli, now).await?;
            print_json(&user_json(&user))
        }
        UserCommand::Invite { email, name, roles } => {
            let templates = Templates::load(settings.templates_dir.clone())?;
            let master = load_master_key(settings)?;
            let letters = Letters { templates: &templates, master: &master, issuer: &settings.issuer };
            let account_settings = AccountSettings::from_settings(settings);
            let new = NewInvitation { email, name, roles };
            let user = users::invite(&store, &hasher, &letters, &account_settings, new, &Actor::Cli, now).await?;
            if settings.smtp_url.is_empty() {
                eprintln!(
                    "smtp_url is not set: the running server writes the invitation to its log (development only)"
                );
            }
            print_json(&json!({
                "user": user_json(&user),
                "invitation_expires_at": now + account_settings.invitation_ttl,
            }))
        }
        UserCommand::List => {
            let all = store.list_users().await?;
            print_json(&serde_json::Value::Array(all.iter().map(user_json).collect()))
        }
        UserCommand::Show { user } => print_json(&user_json(&users::show(&store, &user).await?)),
        UserCommand::SetPassword { user, password_stdin: _ } => {
            let password = read_password()?;
            let user = users::set_password(&store, &hasher, &user, &password, &Actor::Cli, now).await?;
            print_json(&user_json(&user))
        }
        UserCommand::Disable { user } => {
            let user = users::disable(&store, &user, &Actor::Cli, now).await?;
            print_json(&user_json(&user))
        }
        UserCommand::AddRole { user, role } => {
            print_json(&user_json(&users::change_roles(&store, &user, Some(&role), None, &Actor::Cli, now).await?))
        }
        UserCommand::RemoveRole { user, role } => {
            print_json(&user_json(&users::change_roles(&store, &user, None, Some(&role), &Actor::Cli, now).await?))
        }
        UserCommand::MfaReset { user } => {
            let (user, had_mfa) = users::reset_mfa(&store, &user, &Actor::Cli, now).await?;
            print_json(&json!({ "sub": user.sub, "email": user.email, "mfa_reset": true, "had_mfa": had_mfa }))
        }
    };
    store.close().await;
    result
}

fn when(ts: Option<i64>) -> String {
    ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn key_json(key: &KeyRecord) -> serde_json::Value {
    serde_json::to_value(KeyView::from(key)).unwrap_or_default()
}

async fn run_keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let now = unix_now();
    let result = async {
        match command {
            KeysCommand::List { json: true } => {
                let keys = store.list_keys().await?;
                print_json(&serde_json::Value::Array(keys.iter().map(key_json).collect()))
            }
            KeysCommand::List { json: false } => {
                let keys = store.list_keys().await?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<43} {:<6} {:<8} {:<20} {:<20} {:<20} {:<20}",
                    "KID", "ALG", "STATUS", "CREATED", "ACTIVATES", "RETIRED", "REMOVED"
                )?;
                for k in keys {
                    writeln!(
                        out,
                        "{:<43} {:<6} {:<8} {:<20} {:<20} {:<20} {:<20}",
                        k.kid,
                        k.alg.as_str(),
                        k.status.as_str(),
                        when(Some(k.created_at)),
                        when(Some(k.activates_at)),
                        when(k.retired_at),
                        when(k.removes_at)
                    )?;
                }
                Ok(())
            }
            KeysCommand::Rotate => {
                let master = load_master_key(settings)?;
                let published: Vec<serde_json::Value> =
                    admin_keys::rotate(&store, &master, &settings.key_lifecycle(), &Actor::Cli, now)
                        .await?
                        .iter()
                        .map(key_json)
                        .collect();
                if published.is_empty() {
                    eprintln!("every algorithm already has a next key; nothing to do");
                }
                print_json(&serde_json::Value::Array(published))
            }
            KeysCommand::Revoke { kid, yes } => {
                eprintln!(
                    "WARNING: revoking {kid} removes it from the JWKS at once: every token it signed stops \
                     verifying (apps must refresh those tokens or sign users in again). If it was the active key, a new \
                     key signs immediately, before resource servers have fetched it: they will refuse new \
                     tokens until they refetch the JWKS. Use this only for a compromised key (docs/keys.md)."
                );
                if !yes {
                    anyhow::bail!("not revoked: run again with --yes to confirm");
                }
                let master = load_master_key(settings)?;
                let (removed, replacement) = admin_keys::revoke(&store, &master, &kid, &Actor::Cli, now).await?;
                print_json(&json!({
                    "revoked": key_json(&removed),
                    "replacement": replacement.as_ref().map(key_json),
                }))
            }
        }
    }
    .await;
    store.close().await;
    result
}

async fn run_audit(settings: &Settings, user: Option<String>, event: Option<String>, limit: u32) -> anyhow::Result<()> {
    if let Some(event) = &event {
        if !kind::ALL.contains(&event.as_str()) {
            anyhow::bail!("unknown event type `{event}` (known: {})", kind::ALL.join(", "));
        }
    }
    let store = open_store(settings).await?;
    let result = async {
        let user_sub = match user {
            Some(user) => Some(users::show(&store, &user).await?.sub),
            None => None,
        };
        let filter = AuditFilter { user_sub, event, limit: i64::from(limit.clamp(1, 10_000)), ..Default::default() };
        let events = store.list_audit_events(&filter).await?;
        print_json(&serde_json::to_value(events)?)
    }
    .await;
    store.close().await;
    result
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).await?;
    let addr = app.local_addr()?;
    tracing::info!(issuer = %settings.issuer, %addr, "latchkey is listening");
    if settings.log_format == LogFormat::Text {
        // A first-run hint for people; JSON log pipelines get only the event above.
        eprintln!(
            "Latchkey is running.\n  issuer:    {}\n  listening: http://{addr}\n  discovery: {}/.well-known/openid-configuration\n\
             Create a first client in another terminal:\n  cargo run --release -- client create --name my-service --scope read",
            settings.issuer, settings.issuer
        );
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    latchkey::telemetry::init(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => {
                let store = open_store(&settings).await?;
                store.close().await;
                eprintln!("database is up to date");
                Ok(())
            }
            Command::Client(command) => run_client(&settings, command).await,
            Command::User(command) => run_user(&settings, command).await,
            Command::Apply { file, dry_run, prune } => run_apply(&settings, &file, dry_run, prune).await,
            Command::Keys(command) => run_keys(&settings, command).await,
            Command::Audit { user, event, limit } => run_audit(&settings, user, event, limit).await,
            Command::Openapi => {
                println!("{}", latchkey::endpoints::admin::openapi_json(&settings.issuer));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

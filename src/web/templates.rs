//! Page templates: built into the binary, each replaceable by a file of the same name in the
//! `templates_dir` setting (a deployment's own branding).

use std::path::PathBuf;

use minijinja::Environment;
use serde::Serialize;

/// Built-in templates, by name.
const BUILT_IN: [(&str, &str); 34] = [
    ("layout.html", include_str!("../../templates/layout.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("signed_out.html", include_str!("../../templates/signed_out.html")),
    ("logout_confirm.html", include_str!("../../templates/logout_confirm.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("mfa.html", include_str!("../../templates/mfa.html")),
    ("account.html", include_str!("../../templates/account.html")),
    ("totp_setup.html", include_str!("../../templates/totp_setup.html")),
    ("recovery_codes.html", include_str!("../../templates/recovery_codes.html")),
    ("register.html", include_str!("../../templates/register.html")),
    ("check_email.html", include_str!("../../templates/check_email.html")),
    ("link_action.html", include_str!("../../templates/link_action.html")),
    ("forgot_password.html", include_str!("../../templates/forgot_password.html")),
    ("new_password.html", include_str!("../../templates/new_password.html")),
    ("email_layout.html", include_str!("../../templates/email_layout.html")),
    ("email_verify.txt", include_str!("../../templates/email_verify.txt")),
    ("email_verify.html", include_str!("../../templates/email_verify.html")),
    ("email_signup_existing.txt", include_str!("../../templates/email_signup_existing.txt")),
    ("email_signup_existing.html", include_str!("../../templates/email_signup_existing.html")),
    ("email_reset_password.txt", include_str!("../../templates/email_reset_password.txt")),
    ("email_reset_password.html", include_str!("../../templates/email_reset_password.html")),
    ("email_password_changed.txt", include_str!("../../templates/email_password_changed.txt")),
    ("email_password_changed.html", include_str!("../../templates/email_password_changed.html")),
    ("email_change_email.txt", include_str!("../../templates/email_change_email.txt")),
    ("email_change_email.html", include_str!("../../templates/email_change_email.html")),
    ("email_email_changed.txt", include_str!("../../templates/email_email_changed.txt")),
    ("email_email_changed.html", include_str!("../../templates/email_email_changed.html")),
    ("email_change_taken.txt", include_str!("../../templates/email_change_taken.txt")),
    ("email_change_taken.html", include_str!("../../templates/email_change_taken.html")),
    ("email_invitation.txt", include_str!("../../templates/email_invitation.txt")),
    ("email_invitation.html", include_str!("../../templates/email_invitation.html")),
    ("latchkey.css", include_str!("../../templates/latchkey.css")),
];

pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct TemplateError {
    name: String,
    source: minijinja::Error,
}

impl Templates {
    /// Loads every template once, so a broken override fails at start, not on a user's request.
    pub fn load(overrides: Option<PathBuf>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if let Some(dir) = &overrides {
                // Only plain file names: a template name can never reach outside the directory.
                if !name.contains('/') && !name.contains("..") {
                    if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
                        return Ok(Some(text));
                    }
                }
            }
            Ok(BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, text)| text.to_string()))
        });
        for (name, _) in BUILT_IN.iter().filter(|(n, _)| n.ends_with(".html") || n.ends_with(".txt")) {
            env.get_template(name).map_err(|source| TemplateError { name: name.to_string(), source })?;
        }
        Ok(Self { env })
    }

    pub fn render<C: Serialize>(&self, name: &str, context: C) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|source| TemplateError { name: name.to_string(), source })
    }

    /// The stylesheet (not a template: served as it is).
    pub fn stylesheet(&self) -> String {
        self.env.get_template("latchkey.css").map(|t| t.source().to_string()).unwrap_or_default()
    }
}

//! Passphrases for sealed key files: from the environment (scripts, CI, the demo) or a prompt
//! that does not echo.

use tabir_client::sealed::MIN_PASSPHRASE_CHARS;
use tabir_client::Passphrase;

pub const PASSPHRASE_ENV: &str = tabir_client::config::PASSPHRASE_ENV;
/// The passphrase for a new device or auditor bundle (falls back to a prompt).
pub const BUNDLE_PASSPHRASE_ENV: &str = "TABIR_BUNDLE_PASSPHRASE";

/// The passphrase from `variable`, or asked for on the terminal. `confirm` asks twice (for a
/// new secret).
pub fn passphrase(variable: &str, what: &str, confirm: bool) -> Result<Passphrase, String> {
    if let Some(passphrase) = Passphrase::from_env(variable) {
        return Ok(passphrase);
    }
    let first = rpassword::prompt_password(format!("Passphrase for {what}: "))
        .map_err(|e| format!("no passphrase: set {variable} or run in a terminal ({e})"))?;
    if confirm {
        if first.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(format!(
                "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
            ));
        }
        let again = zeroize::Zeroizing::new(
            rpassword::prompt_password("Repeat it: ").map_err(|e| e.to_string())?,
        );
        if *again != first {
            return Err("the passphrases differ".into());
        }
    }
    Ok(Passphrase::new(first))
}

//! The inline-secret scan: **secrets are never inline** in a manifest.
//!
//! Runs on the raw YAML value before the typed parse, so that `token: abc` under `broker` is
//! reported as "inline credential, use tokenFile/tokenEnv" rather than as a generic unknown
//! field. A key "looks like a credential" when one of its words (split at camelCase, `_`, `-`)
//! is token, password, passwd, secret, credential(s), apikey, or key after api/private/access/
//! secret/signing/client (any `key` word inside an exec check's `env`), unless its last word
//! is `file` or `env` (a reference, which is the allowed form). Messages never contain the value.

use serde_yaml::Value;

use super::problem::FieldPath;

/// One inline credential: where it is and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSecret {
    /// The field holding the literal value.
    pub path: FieldPath,
    /// The message (never the value).
    pub message: String,
}

/// Every field of `root` that holds a literal credential.
pub fn find_inline_secrets(root: &Value) -> Vec<InlineSecret> {
    let mut found = Vec::new();
    walk(root, &FieldPath::default(), &mut found);
    found
}

fn walk(value: &Value, path: &FieldPath, found: &mut Vec<InlineSecret>) {
    match value {
        Value::Mapping(mapping) => {
            let in_exec_env = is_exec_env(path);
            for (key, child) in mapping {
                let Some(key) = key.as_str() else { continue };
                let child_path = path.key(key);
                if holds_literal(child) && looks_like_credential(key, in_exec_env) {
                    found.push(InlineSecret {
                        message: advice(key, in_exec_env),
                        path: child_path,
                    });
                } else {
                    walk(child, &child_path, found);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &path.index(i), found);
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, path, found),
        _ => {}
    }
}

/// True for `...exec.env` (keys there are environment variable names like `API_TOKEN`).
fn is_exec_env(path: &FieldPath) -> bool {
    path.to_string().ends_with(".exec.env")
}

/// A string or number, or a list holding one: something that could be the secret itself.
fn holds_literal(value: &Value) -> bool {
    match value {
        Value::String(text) => !text.is_empty(),
        Value::Number(_) => true,
        Value::Sequence(items) => items.iter().any(holds_literal),
        Value::Tagged(tagged) => holds_literal(&tagged.value),
        _ => false,
    }
}

/// Whether a key names a credential (see the module doc).
pub fn looks_like_credential(key: &str, env_var_name: bool) -> bool {
    let words = split_words(key);
    if matches!(
        words.last().map(String::as_str),
        Some("file" | "env" | "path" | "name")
    ) {
        return false;
    }
    words
        .iter()
        .enumerate()
        .any(|(i, word)| match word.as_str() {
            "token" | "tokens" | "password" | "passwd" | "passphrase" | "secret" | "secrets"
            | "credential" | "credentials" | "apikey" => true,
            "key" => {
                env_var_name
                    || i.checked_sub(1).is_some_and(|p| {
                        matches!(
                            words[p].as_str(),
                            "api" | "private" | "access" | "secret" | "signing" | "client"
                        )
                    })
            }
            _ => false,
        })
}

/// Splits `apiKey`, `API_KEY`, `basic-auth-password` into lowercase words.
fn split_words(key: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for ch in key.chars() {
        if !ch.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if ch.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        current.extend(ch.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn advice(key: &str, in_exec_env: bool) -> String {
    let base = "secrets are never inline in a manifest";
    if in_exec_env {
        return format!(
            "`{key}` looks like a credential with a literal value; {base}: let the command read it from a file \
             (pass the path) instead of putting the value here"
        );
    }
    let lower = key.to_lowercase();
    let (file, env) = if lower.contains("pass") {
        ("passwordFile", "passwordEnv")
    } else if lower.contains("user") {
        ("usernameFile", "usernameEnv")
    } else {
        ("tokenFile", "tokenEnv")
    };
    format!(
        "`{key}` looks like a credential with a literal value; {base}: use `{file}` (a path to a file holding it) \
         or `{env}` (the name of an environment variable)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_table() {
        let cases: &[(&str, bool, bool)] = &[
            ("token", false, true),
            ("password", false, true),
            ("apiKey", false, true),
            ("api_key", false, true),
            ("secret", false, true),
            ("clientSecret", false, true),
            ("DB_PASSWORD", true, true),
            ("API_TOKEN", true, true),
            ("SECRET_KEY", true, true),
            ("KEY", true, true),
            ("tokenFile", false, false),
            ("passwordEnv", false, false),
            ("TOKEN_FILE", true, false),
            ("key", false, false),
            ("KEYCLOAK_URL", true, false),
            ("url", false, false),
            ("bodyContains", false, false),
            ("username", false, false),
        ];
        for (key, env, expected) in cases {
            assert_eq!(
                looks_like_credential(key, *env),
                *expected,
                "{key} (env var: {env})"
            );
        }
    }

    #[test]
    fn finds_literals_anywhere_and_never_echoes_them() {
        let yaml = "\
spec:
  broker:
    token: tok-canary-123
    tokenFile: /etc/t
  smoke:
  - exec:
      command: [true]
      env: { API_TOKEN: tok-canary-456, LOG_LEVEL: debug }
  extra:
    nested: { password: 1234 }
  services:
    token: {}
";
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let found = find_inline_secrets(&value);
        let paths: Vec<String> = found.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "spec.broker.token",
                "spec.smoke[0].exec.env.API_TOKEN",
                "spec.extra.nested.password"
            ]
        );
        assert!(found[0].message.contains("tokenFile") && found[0].message.contains("tokenEnv"));
        assert!(found[2].message.contains("passwordFile"));
        for f in &found {
            assert!(
                !f.message.contains("canary") && !f.message.contains("1234"),
                "{}",
                f.message
            );
        }
    }
}

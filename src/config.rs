//! Configuration, read once from the environment at startup.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FUNCTIONS_BUCKET` | unset | S3 bucket of the function store; unset means the directory store |
//! | `FUNCTIONS_PREFIX` | empty | key prefix inside the bucket |
//! | `FUNCTIONS_DIR` | `functions` | root of the directory store |
//! | `CACHE_MAX_BYTES` | half of `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, else 256 MiB | compiled-plugin cache cap |
//! | `REVALIDATE_AFTER` | `30s` for S3, `0s` for a directory | trust period of a loaded manifest |
//! | `DEADLINE_MARGIN` | `50ms` | time kept back from the Lambda deadline |
//! | `PREWARM` | unset | comma list of functions (or `*`) compiled during init |
//! | `ALLOW_PRIVATE_EGRESS` | `false` | local development only: functions may call private addresses |
//! | `SOURCE_NAMES` | unset | `name=resource,...`: the deployed resource each hook and grant name stands for |
//! | `KV_TABLE` | `wasm-lambda-kv` | the DynamoDB table (keys `pk`, `sk`) of the key-value capability |
//! | `SECRETS_TTL` | `5m` | how long a secret read through the host is reused |
//! | `SLOT_RESET` | the best this kernel has | how an `instance: fresh` slot is reset: `scan`, `read` or `zero` |
//!
//! A bad value is an error naming the variable and the value, never a silent default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::units::{parse_duration, parse_size};

pub const ENV_FUNCTIONS_BUCKET: &str = "FUNCTIONS_BUCKET";
pub const ENV_FUNCTIONS_PREFIX: &str = "FUNCTIONS_PREFIX";
pub const ENV_FUNCTIONS_DIR: &str = "FUNCTIONS_DIR";
pub const ENV_CACHE_MAX_BYTES: &str = "CACHE_MAX_BYTES";
pub const ENV_REVALIDATE_AFTER: &str = "REVALIDATE_AFTER";

/// How long a manifest read from S3 is trusted by default.
pub const DEFAULT_S3_REVALIDATE_AFTER: Duration = Duration::from_secs(30);
pub const ENV_DEADLINE_MARGIN: &str = "DEADLINE_MARGIN";
pub const ENV_PREWARM: &str = "PREWARM";
pub const ENV_ALLOW_PRIVATE_EGRESS: &str = "ALLOW_PRIVATE_EGRESS";
pub const ENV_SOURCE_NAMES: &str = "SOURCE_NAMES";
pub const ENV_KV_TABLE: &str = "KV_TABLE";
pub const ENV_SECRETS_TTL: &str = "SECRETS_TTL";
pub const ENV_SLOT_RESET: &str = "SLOT_RESET";
pub const ENV_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
pub const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
pub const ENV_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Where functions are loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `<dir>/<name>/manifest.yaml`
    Directory(PathBuf),
    /// `s3://<bucket>/<prefix><name>/manifest.yaml`
    S3 { bucket: String, prefix: String },
}

/// Which functions are compiled during init.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Prewarm {
    #[default]
    None,
    All,
    Only(Vec<String>),
}

/// The bootstrap's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreLocation,
    pub cache_max_bytes: u64,
    pub revalidate_after: Duration,
    pub deadline_margin: Duration,
    pub prewarm: Prewarm,
    /// Lifts the egress address check (never the Runtime API's): local development only.
    pub allow_private_egress: bool,
    /// `AWS_LAMBDA_RUNTIME_API`, which functions may never reach.
    pub runtime_api: Option<String>,
    /// The name hooks use for each deployed resource (bucket, queue, table, ...): a record from
    /// resource `physical` routes as if from `names[physical]`.
    pub source_names: BTreeMap<String, String>,
    /// How many invocations run at once (`AWS_LAMBDA_MAX_CONCURRENCY`, which Lambda Managed
    /// Instances set; 1 when unset or not a positive number). At 1 a call runs on the thread
    /// that received it.
    pub max_concurrency: usize,
    /// The DynamoDB table of the key-value capability.
    pub kv_table: String,
    /// How long a secret read is reused.
    pub secrets_ttl: Duration,
    /// How pooled instance slots are reset; `None`: the best this kernel has.
    pub slot_reset: Option<crate::artifacts::SlotReset>,
}

/// A variable whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let invalid = |variable: &'static str, value: &str, reason: String| ConfigError {
            variable,
            value: value.to_string(),
            reason,
        };

        let store = match get(ENV_FUNCTIONS_BUCKET) {
            Some(bucket) => {
                let mut prefix = get(ENV_FUNCTIONS_PREFIX).unwrap_or_default();
                if !prefix.is_empty() && !prefix.ends_with('/') {
                    prefix.push('/');
                }
                StoreLocation::S3 { bucket, prefix }
            }
            None => StoreLocation::Directory(PathBuf::from(
                get(ENV_FUNCTIONS_DIR).unwrap_or_else(|| "functions".to_string()),
            )),
        };

        let cache_max_bytes = match get(ENV_CACHE_MAX_BYTES) {
            Some(value) => {
                parse_size(&value).map_err(|reason| invalid(ENV_CACHE_MAX_BYTES, &value, reason))?
            }
            None => match get(ENV_MEMORY_SIZE) {
                Some(value) => {
                    let mb: u64 = value.trim().parse().map_err(|_| {
                        invalid(ENV_MEMORY_SIZE, &value, "expected megabytes".into())
                    })?;
                    mb * 1024 * 1024 / 2
                }
                None => DEFAULT_CACHE_MAX_BYTES,
            },
        };

        let default_revalidate = match store {
            StoreLocation::S3 { .. } => DEFAULT_S3_REVALIDATE_AFTER,
            StoreLocation::Directory(_) => Duration::ZERO,
        };
        let revalidate_after = match get(ENV_REVALIDATE_AFTER) {
            Some(value) => parse_duration(&value)
                .map_err(|reason| invalid(ENV_REVALIDATE_AFTER, &value, reason))?,
            None => default_revalidate,
        };
        let deadline_margin = match get(ENV_DEADLINE_MARGIN) {
            Some(value) => parse_duration(&value)
                .map_err(|reason| invalid(ENV_DEADLINE_MARGIN, &value, reason))?,
            None => Duration::from_millis(50),
        };

        let prewarm = match get(ENV_PREWARM) {
            None => Prewarm::None,
            Some(value) if value.trim() == "*" => Prewarm::All,
            Some(value) => {
                let names: Vec<String> = value
                    .split(',')
                    .map(|name| name.trim().to_string())
                    .filter(|name| !name.is_empty())
                    .collect();
                if let Some(bad) = names.iter().find(|name| !crate::name::is_valid(name)) {
                    return Err(invalid(
                        ENV_PREWARM,
                        &value,
                        format!("`{bad}` is not a function name"),
                    ));
                }
                Prewarm::Only(names)
            }
        };

        let allow_private_egress = match get(ENV_ALLOW_PRIVATE_EGRESS) {
            None => false,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(invalid(
                        ENV_ALLOW_PRIVATE_EGRESS,
                        &value,
                        "expected true or false".into(),
                    ));
                }
            },
        };

        let mut source_names = BTreeMap::new();
        if let Some(value) = get(ENV_SOURCE_NAMES) {
            for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some((name, resource)) = pair
                    .split_once('=')
                    .map(|(n, r)| (n.trim(), r.trim()))
                    .filter(|(n, r)| !n.is_empty() && !r.is_empty())
                else {
                    return Err(invalid(
                        ENV_SOURCE_NAMES,
                        &value,
                        format!("`{pair}` is not name=resource"),
                    ));
                };
                if let Some(other) = source_names.insert(resource.to_string(), name.to_string()) {
                    return Err(invalid(
                        ENV_SOURCE_NAMES,
                        &value,
                        format!("`{resource}` is named twice (`{other}` and `{name}`)"),
                    ));
                }
            }
        }

        Ok(Config {
            store,
            cache_max_bytes,
            revalidate_after,
            deadline_margin,
            prewarm,
            allow_private_egress,
            runtime_api: get(ENV_RUNTIME_API),
            source_names,
            kv_table: get(ENV_KV_TABLE).unwrap_or_else(|| DEFAULT_KV_TABLE.to_string()),
            secrets_ttl: match get(ENV_SECRETS_TTL) {
                Some(value) => parse_duration(&value)
                    .map_err(|reason| invalid(ENV_SECRETS_TTL, &value, reason))?,
                None => DEFAULT_SECRETS_TTL,
            },
            slot_reset: match get(ENV_SLOT_RESET) {
                Some(value) => Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|reason: String| invalid(ENV_SLOT_RESET, &value, reason))?,
                ),
                None => None,
            },
            max_concurrency: get(ENV_MAX_CONCURRENCY)
                .and_then(|value| value.trim().parse::<usize>().ok())
                .filter(|&max| max > 0)
                .unwrap_or(1),
        })
    }
}
/// How long a secret read is reused by default (`SECRETS_TTL`).
pub const DEFAULT_SECRETS_TTL: Duration = Duration::from_secs(300);
/// The key-value table when `KV_TABLE` is unset.
pub const DEFAULT_KV_TABLE: &str = "wasm-lambda-kv";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn slot_reset_is_one_of_three_ways_or_the_kernels_best() {
        use crate::artifacts::SlotReset;
        assert_eq!(config(&[]).unwrap().slot_reset, None);
        for (text, how) in [
            ("scan", SlotReset::Scan),
            ("read", SlotReset::Read),
            (" zero ", SlotReset::Zero),
        ] {
            assert_eq!(
                config(&[(ENV_SLOT_RESET, text)]).unwrap().slot_reset,
                Some(how)
            );
        }
        let error = config(&[(ENV_SLOT_RESET, "fast")]).unwrap_err().to_string();
        assert!(
            error.contains("SLOT_RESET") && error.contains("fast"),
            "{error}"
        );
    }

    #[test]
    fn defaults_to_the_functions_directory() {
        let config = config(&[]).unwrap();
        assert_eq!(config.store, StoreLocation::Directory("functions".into()));
        assert_eq!(config.cache_max_bytes, 256 * 1024 * 1024);
        assert_eq!(config.revalidate_after, Duration::ZERO);
        assert_eq!(config.deadline_margin, Duration::from_millis(50));
        assert_eq!(config.prewarm, Prewarm::None);
        assert!(!config.allow_private_egress);
    }

    #[test]
    fn bucket_selects_s3_with_a_slash_terminated_prefix() {
        let config = config(&[("FUNCTIONS_BUCKET", "b"), ("FUNCTIONS_PREFIX", "prod")]).unwrap();
        assert_eq!(
            config.store,
            StoreLocation::S3 {
                bucket: "b".into(),
                prefix: "prod/".into()
            }
        );
        assert_eq!(config.revalidate_after, Duration::from_secs(30));
    }

    #[test]
    fn cache_defaults_to_half_the_lambda_memory() {
        let config = config(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")]).unwrap();
        assert_eq!(config.cache_max_bytes, 256 * 1024 * 1024);
        let config = config_with_cache("64MiB");
        assert_eq!(config.cache_max_bytes, 64 * 1024 * 1024);
    }

    fn config_with_cache(value: &str) -> Config {
        config(&[("CACHE_MAX_BYTES", value)]).unwrap()
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let error = config(&[("REVALIDATE_AFTER", "soon")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("REVALIDATE_AFTER=\"soon\" is invalid")
        );
        let error = config(&[("CACHE_MAX_BYTES", "lots")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("CACHE_MAX_BYTES=\"lots\" is invalid")
        );
        let error = config(&[("ALLOW_PRIVATE_EGRESS", "sure")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("ALLOW_PRIVATE_EGRESS=\"sure\" is invalid")
        );
        let error = config(&[("PREWARM", "hello,Bad Name")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`Bad Name` is not a function name")
        );
    }

    #[test]
    fn source_names_map_deployed_resources_to_hook_names() {
        let config =
            config(&[("SOURCE_NAMES", "uploads=stack-uploads-123, jobs=stack-jobs")]).unwrap();
        assert_eq!(config.source_names["stack-uploads-123"], "uploads");
        assert_eq!(config.source_names["stack-jobs"], "jobs");
        let error = config_error("uploads");
        assert!(error.contains("`uploads` is not name=resource"), "{error}");
        let error = config_error("a=x,b=x");
        assert!(error.contains("`x` is named twice"), "{error}");
    }

    fn config_error(source_names: &str) -> String {
        config(&[("SOURCE_NAMES", source_names)])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn prewarm_takes_a_list_or_everything() {
        assert_eq!(config(&[("PREWARM", "*")]).unwrap().prewarm, Prewarm::All);
        assert_eq!(
            config(&[("PREWARM", "hello, echo")]).unwrap().prewarm,
            Prewarm::Only(vec!["hello".into(), "echo".into()])
        );
    }
}

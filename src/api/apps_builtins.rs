//! Applications built-ins: download and extract the package, convert its image registry for
//! air-gapped sites, upload the apps.

use rhai::plugin::*;

#[export_module]
pub mod apps_builtins {
    use crate::action::{Action, ApiTarget};
    use crate::api::options::Opts;
    use crate::failure::invalid;
    use crate::runtime;
    use crate::value::Value;
    use rhai::{Dynamic, EvalAltResult, Map};

    type R<T> = Result<T, Box<EvalAltResult>>;

    fn path_in_base(p: &str) -> String {
        runtime::with(|rt| rt.base_dir.join(p).display().to_string())
    }

    fn generation(builtin: &str, g: Option<String>) -> R<String> {
        match g.as_deref().unwrap_or("repo") {
            "repo" => Ok("repo".into()),
            "oci" => Ok("oci".into()),
            other => Err(invalid(
                builtin,
                format!("`generation` must be \"repo\" or \"oci\", not \"{other}\""),
            )),
        }
    }

    /// Download the applications package (a streaming download with progress, resumed when a
    /// run broke off), check its sha256 when given, and extract it into `dir` safely: no entry
    /// may land outside `dir`, and an existing file that differs is never overwritten. A package
    /// already downloaded is not fetched again. Answers the files extracted.
    ///
    /// # Options
    /// - `sha256`: the package's checksum (64 hex digits)
    ///
    /// # Example
    /// ```rhai
    /// download_apps(site.apps.url, "apps", #{ sha256: site.apps.sha256 });
    /// ```
    #[rhai_fn(name = "download_apps", return_raw)]
    pub fn download_apps_with(url: Dynamic, dir: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "download_apps";
        let url = Value::from_dynamic(&url).map_err(|e| invalid(B, e))?;
        match &url {
            // a package on this machine (an air-gapped bundle's, see bundle_apps)
            Value::Str(u) if u.starts_with("file://") => {
                if !std::path::Path::new(&u["file://".len()..]).is_file() {
                    return Err(invalid(B, format!("{u}: there is no such file")));
                }
            }
            // a password in a plain URL is refused there (give the whole URL as a secret)
            Value::Str(u) => crate::validate::url(u).map_err(|e| invalid(B, e))?,
            Value::Secret(_) => {}
            other => {
                return Err(invalid(
                    B,
                    format!("the URL must be a string, not {}", other.type_name()),
                ));
            }
        }
        if dir.trim().is_empty() {
            return Err(invalid(B, "the directory is empty"));
        }
        let mut o = Opts::new(B, opts);
        let sha256 = o.string("sha256")?;
        o.finish()?;
        if let Some(s) = &sha256
            && (s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(invalid(B, format!("sha256 `{s}` is not 64 hex digits")));
        }
        runtime::with(|rt| {
            rt.perform(
                B,
                Action::AppsDownload {
                    url,
                    dir: path_in_base(dir),
                    sha256,
                },
            )
        })
    }

    /// Download and extract the applications package (see the form with options).
    ///
    /// # Example
    /// ```rhai
    /// download_apps("https://downloads.example.com/apps.zip", "apps");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn download_apps(url: Dynamic, dir: &str) -> R<Dynamic> {
        download_apps_with(url, dir, Map::new())
    }

    /// Point the applications at a local registry, for air-gapped sites. With the package's
    /// `convert_image_registry.py` (or `script`), runs it through python3 with the generation's
    /// flag (`--repo`, or `--artifactory` for oci) and reads its "make sure … was added to …"
    /// lines; without it, converts natively: the image references in each app zip's text entries
    /// are rewritten to `target_repo` (tags and digests kept), every other entry copied without
    /// recompression, each zip replaced atomically with its permissions and timestamps, and a
    /// failure anywhere replaces nothing. Answers `[#{image, target}]`, the images to mirror.
    ///
    /// # Options
    /// - `generation`: `repo` (default) or `oci`
    /// - `script`: the vendor's convert_image_registry.py, if not in the apps directory
    /// - `images_file`: write the images to mirror, one `image target` per line
    /// - `mirror_commands`: write a shell script of `skopeo copy` commands
    ///
    /// # Example
    /// ```rhai
    /// let images = convert_registry("apps", "registry.local:5000/clearml-apps", #{ mirror_commands: "mirror.sh" });
    /// ```
    #[rhai_fn(name = "convert_registry", return_raw)]
    pub fn convert_registry_with(apps_dir: &str, target_repo: &str, opts: Map) -> R<Dynamic> {
        const B: &str = "convert_registry";
        crate::apps_package::check_target_repo(target_repo).map_err(|e| invalid(B, e))?;
        let mut o = Opts::new(B, opts);
        let generation = generation(B, o.string("generation")?)?;
        let script = o.string("script")?.map(|s| path_in_base(&s));
        let images_file = o.string("images_file")?.map(|s| path_in_base(&s));
        let mirror_file = o.string("mirror_commands")?.map(|s| path_in_base(&s));
        o.finish()?;
        let method = if script.is_some() {
            "vendor script"
        } else {
            "vendor script if in the package, else native"
        };
        runtime::with(|rt| {
            rt.perform(
                B,
                Action::AppsConvertRegistry {
                    apps_dir: path_in_base(apps_dir),
                    target_repo: target_repo.to_string(),
                    generation,
                    method: method.to_string(),
                    script,
                    images_file,
                    mirror_file,
                },
            )
        })
    }

    /// Convert the applications' image registry (see the form with options).
    ///
    /// # Example
    /// ```rhai
    /// convert_registry("apps", "local_registry/clearml-apps");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn convert_registry(apps_dir: &str, target_repo: &str) -> R<Dynamic> {
        convert_registry_with(apps_dir, target_repo, Map::new())
    }

    /// Upload applications to the ClearML server with the package's `upload_apps.py`: first
    /// checks that the API answers (`debug.ping`) and that the credentials are valid
    /// (`users.get_current_user`), then runs the script with the generation's flags (`--user
    /// --password` for repo, `--key --secret --command upload` for oci; `--dir DIR -ml` for a
    /// directory, `--files …` for zips). The secret never appears in a process's arguments.
    ///
    /// # Options
    /// - `api_url` (required)
    /// - `user`, `password` (repo) or `key`, `secret` (oci)
    /// - `generation`: `repo` (default) or `oci`
    /// - `script`: the vendor's upload_apps.py, if not beside the apps
    ///
    /// # Example
    /// ```rhai
    /// upload_apps("apps", #{ api_url: "https://api." + site.base_domain, user: "admin", password: site.apps.password });
    /// ```
    #[rhai_fn(return_raw)]
    pub fn upload_apps(source: Dynamic, opts: Map) -> R<Dynamic> {
        const B: &str = "upload_apps";
        let source: Vec<String> = if source.is_string() {
            vec![source.to_string()]
        } else if let Some(arr) = source.clone().try_cast::<rhai::Array>() {
            arr.iter().map(|d| d.to_string()).collect()
        } else {
            return Err(invalid(
                B,
                "the source must be a directory or a list of app zips",
            ));
        };
        if source.is_empty() {
            return Err(invalid(B, "the list of app zips is empty"));
        }
        let mut o = Opts::new(B, opts);
        let api_url = o
            .string("api_url")?
            .ok_or_else(|| invalid(B, "the option `api_url` is required"))?;
        crate::validate::url(&api_url).map_err(|e| invalid(B, format!("api_url: {e}")))?;
        let generation = generation(B, o.string("generation")?)?;
        let user = o.value("user")?;
        let password = o.secret("password")?;
        let key = o.value("key")?;
        let secret = o.secret("secret")?;
        let script = o.string("script")?.map(|s| path_in_base(&s));
        o.finish()?;
        let (who, pass) = if generation == "oci" {
            (
                key.ok_or_else(|| {
                    invalid(B, "the oci generation uploads with `key` and `secret`")
                })?,
                secret.ok_or_else(|| invalid(B, "the option `secret` is required"))?,
            )
        } else {
            (
                user.ok_or_else(|| {
                    invalid(B, "the repo generation uploads with `user` and `password`")
                })?,
                password.ok_or_else(|| invalid(B, "the option `password` is required"))?,
            )
        };
        let source = source.iter().map(|s| path_in_base(s)).collect();
        let api = ApiTarget {
            api_url,
            key: who,
            secret: pass,
            ca_file: None,
            insecure: false,
            attempts: 3,
            timeout_secs: 30,
        };
        runtime::with(|rt| {
            rt.perform(
                B,
                Action::AppsUpload {
                    source,
                    generation,
                    script,
                    api,
                },
            )
        })
    }
}

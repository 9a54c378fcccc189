//! Finding a dataset's files: config key, environment variable, `shared/data`, the user cache,
//! and else a checksummed download into the cache. One error lists every place looked.

use std::path::{Path, PathBuf};

use md5::Digest;

use crate::config::{DatasetName, ImageDataConfig};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Environment variable naming a data root that holds `<dataset>/` folders.
pub const DATA_ENV: &str = "AUTORESEARCH_DATA";

/// One of a dataset's four files, with the checksums that identify it.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    /// File name without `.gz`, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// MD5 of the official `.gz` archive (as torchvision checks it).
    pub md5_gz: &'static str,
    /// SHA-256 of the decompressed file, which survives re-compression by a mirror.
    pub sha256_raw: Option<&'static str>,
}

/// The paths of a dataset's train/test images/labels files.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFiles {
    /// Training images.
    pub train_images: PathBuf,
    /// Training labels.
    pub train_labels: PathBuf,
    /// Test images.
    pub test_images: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
}

/// The four files of a dataset, in the order train images, train labels, test images, test labels.
pub fn file_specs(dataset: DatasetName) -> [FileSpec; 4] {
    match dataset {
        DatasetName::Mnist => [
            FileSpec {
                name: "train-images-idx3-ubyte",
                md5_gz: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                sha256_raw: Some(
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
            },
            FileSpec {
                name: "train-labels-idx1-ubyte",
                md5_gz: "d53e105ee54ea40749a09fcbcd1e9432",
                sha256_raw: Some(
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
            },
            FileSpec {
                name: "t10k-images-idx3-ubyte",
                md5_gz: "9fb629c4189551a2d022fa330f9573f3",
                sha256_raw: Some(
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
            },
            FileSpec {
                name: "t10k-labels-idx1-ubyte",
                md5_gz: "ec29112dd5afa0611ce80d1b7f02629c",
                sha256_raw: Some(
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            },
        ],
        DatasetName::FashionMnist => [
            FileSpec {
                name: "train-images-idx3-ubyte",
                md5_gz: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                sha256_raw: None,
            },
            FileSpec {
                name: "train-labels-idx1-ubyte",
                md5_gz: "25c81989df183df01b3e8a0aad5dffbe",
                sha256_raw: None,
            },
            FileSpec {
                name: "t10k-images-idx3-ubyte",
                md5_gz: "bef4ecab320f06d8554ea6380940ec79",
                sha256_raw: None,
            },
            FileSpec {
                name: "t10k-labels-idx1-ubyte",
                md5_gz: "bb300cfdad3c16e7a12a480ee83cd310",
                sha256_raw: None,
            },
        ],
    }
}

/// The public mirrors tried when no mirrors are configured.
pub fn default_mirrors(dataset: DatasetName) -> Vec<String> {
    match dataset {
        DatasetName::Mnist => vec![
            "https://ossci-datasets.s3.amazonaws.com/mnist".to_string(),
            "https://storage.googleapis.com/cvdf-datasets/mnist".to_string(),
        ],
        DatasetName::FashionMnist => vec![
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com".to_string(),
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"
                .to_string(),
        ],
    }
}

/// Where to look for a dataset, in order; built from the config and the environment, or by hand
/// in tests.
#[derive(Debug, Clone, Default)]
pub struct DataSearch {
    /// `data.root`: a folder holding the files directly.
    pub config_root: Option<PathBuf>,
    /// `$AUTORESEARCH_DATA`: a folder holding `<dataset>/` folders.
    pub env_root: Option<PathBuf>,
    /// `shared/data` folders found beside the current directory or its ancestors.
    pub shared_roots: Vec<PathBuf>,
    /// The user cache (`$XDG_CACHE_HOME/autoresearch` or `~/.cache/autoresearch`), also the
    /// download target.
    pub cache_root: Option<PathBuf>,
    /// Base URLs (`https://`, `http://` or `file://`) tried in order for missing files.
    pub mirrors: Vec<String>,
}

impl DataSearch {
    /// The search order for `cfg`, reading the environment and the current directory.
    pub fn from_config(dataset: DatasetName, cfg: &ImageDataConfig) -> Self {
        let mirrors = if cfg.mirrors.is_empty() {
            default_mirrors(dataset)
        } else {
            cfg.mirrors.clone()
        };
        DataSearch {
            mirrors,
            ..DataSearch::local(cfg.root.clone())
        }
    }

    /// The local search order (no mirrors): `config_root`, `$AUTORESEARCH_DATA`, `shared/data`
    /// beside the current directory or its ancestors, the user cache.
    pub fn local(config_root: Option<PathBuf>) -> Self {
        let env_root = std::env::var_os(DATA_ENV).map(PathBuf::from);
        let shared_roots = std::env::current_dir()
            .map(|cwd| {
                cwd.ancestors()
                    .map(|a| a.join("shared").join("data"))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        let cache_root = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("autoresearch"));
        DataSearch {
            config_root,
            env_root,
            shared_roots,
            cache_root,
            mirrors: Vec::new(),
        }
    }

    /// The folders `<root>/<sub>` to search in order, each with what it is (`data.root`-style
    /// explicit roots are not included).
    pub fn candidates(&self, sub: &Path) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        if let Some(root) = &self.env_root {
            out.push((format!("${DATA_ENV}"), root.join(sub)));
        }
        for root in &self.shared_roots {
            out.push(("shared data".into(), root.join(sub)));
        }
        if let Some(cache) = &self.cache_root {
            out.push(("user cache".into(), cache.join(sub)));
        }
        out
    }

    /// Finds the dataset locally, else downloads it into the cache; errors list every place.
    pub fn locate(&self, dataset: DatasetName) -> Result<DatasetFiles> {
        let specs = file_specs(dataset);
        let dir_name = dataset.dir_name();
        if let Some(root) = &self.config_root {
            // an explicit root is the user's choice: never fall back to another copy
            return find_files(root, &specs).map_err(|missing| {
                Error::invalid(
                    "data.root",
                    format!(
                        "{} does not hold {dir_name} ({missing}); point data.root at the folder with its IDX files, or remove data.root to search ${DATA_ENV}, shared/data and the user cache",
                        root.display()
                    ),
                )
            });
        }
        let candidates = self.candidates(Path::new(dir_name));
        let mut looked = Vec::new();
        for (what, dir) in &candidates {
            match find_files(dir, &specs) {
                Ok(files) => return Ok(files),
                Err(missing) => looked.push(format!("{what} {} ({missing})", dir.display())),
            }
        }
        match &self.cache_root {
            Some(cache) => {
                let target = cache.join(dir_name);
                match self.download(&target, &specs) {
                    Ok(()) => {
                        return find_files(&target, &specs).map_err(|missing| Error::DataNotFound {
                            dataset: dir_name.to_string(),
                            looked: format!("downloaded into {} but {missing}", target.display()),
                        })
                    }
                    Err(reason) => {
                        looked.push(format!("download into {}: {reason}", target.display()))
                    }
                }
            }
            None => looked.push("no user cache ($HOME unset), so no download".to_string()),
        }
        Err(Error::DataNotFound {
            dataset: dir_name.to_string(),
            looked: looked.join("; "),
        })
    }

    fn download(&self, target: &Path, specs: &[FileSpec; 4]) -> std::result::Result<(), String> {
        if self.mirrors.is_empty() {
            return Err("no mirrors configured".to_string());
        }
        for spec in specs {
            if find_one(target, spec.name).is_some() {
                continue;
            }
            let mut failures = Vec::new();
            let mut done = false;
            for mirror in &self.mirrors {
                let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), spec.name);
                match fetch(&url).and_then(|bytes| verify(&url, &bytes, spec).map(|()| bytes)) {
                    Ok(bytes) => {
                        write_atomic(&target.join(format!("{}.gz", spec.name)), &bytes)
                            .map_err(|e| e.to_string())?;
                        done = true;
                        break;
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !done {
                return Err(failures.join("; "));
            }
        }
        Ok(())
    }
}

fn find_one(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

fn find_files(dir: &Path, specs: &[FileSpec; 4]) -> std::result::Result<DatasetFiles, String> {
    if !dir.is_dir() {
        return Err("no such folder".to_string());
    }
    let found: Vec<Option<PathBuf>> = specs.iter().map(|s| find_one(dir, s.name)).collect();
    let missing: Vec<&str> = specs
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(s, _)| s.name)
        .collect();
    match found.as_slice() {
        [Some(a), Some(b), Some(c), Some(d)] => Ok(DatasetFiles {
            train_images: a.clone(),
            train_labels: b.clone(),
            test_images: c.clone(),
            test_labels: d.clone(),
        }),
        _ => Err(format!("missing {}[.gz]", missing.join(", "))),
    }
}

/// Fetches a URL's bytes: `file://` from disk, `http(s)://` over the network.
pub fn fetch(url: &str) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Download {
        url: url.to_string(),
        message,
    };
    if let Some(path) = url.strip_prefix("file://") {
        return std::fs::read(path).map_err(|e| fail(e.to_string()));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail(
            "unsupported scheme (valid: https://, http://, file://)".to_string(),
        ));
    }
    http_get(url).map_err(fail)
}

/// The body of an HTTP(S) GET (at most 512 MiB).
#[cfg(feature = "download")]
fn http_get(url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut response = ureq::get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Without the `download` feature there is no HTTP client.
#[cfg(not(feature = "download"))]
fn http_get(_url: &str) -> std::result::Result<Vec<u8>, String> {
    Err("this build has no HTTP client (cargo feature `download` is off); put the files in a data folder or use a file:// mirror".to_string())
}

/// Accepts the bytes if the archive's MD5 or the decompressed SHA-256 matches.
fn verify(url: &str, bytes: &[u8], spec: &FileSpec) -> Result<()> {
    let md5 = hex(&md5::Md5::digest(bytes));
    if md5 == spec.md5_gz {
        return Ok(());
    }
    if let Some(expected) = spec.sha256_raw {
        let mut raw = Vec::new();
        if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut raw).is_ok()
            && hex(&sha2::Sha256::digest(&raw)) == expected
        {
            return Ok(());
        }
    }
    Err(Error::Download {
        url: url.to_string(),
        message: format!("checksum mismatch (md5 {md5}, expected {})", spec.md5_gz),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

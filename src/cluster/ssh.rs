//! SSH transport with the ssh2 crate: resolves the login host through `~/.ssh/config`,
//! verifies its key against known_hosts (an unknown host is refused, never trusted on first
//! use), authenticates with ssh-agent or key files, and implements [`Remote`] with exec and
//! SFTP.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2::{CheckResult, KnownHostFileKind, OpenFlags, OpenType, Session, Sftp};
use ssh2_config::{ParseRule, SshConfig};

use super::profile::ClusterProfile;
use super::remote::{read_lossy, Output, Remote, RemoteFile};
use super::script::shell_quote;
use crate::error::{Error, Result};

/// Default time allowed for the TCP connection and the SSH handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time allowed for any one blocking SSH operation after connecting.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and as whom to connect, after `~/.ssh/config` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The host as the profile names it (possibly an `~/.ssh/config` alias).
    pub alias: String,
    /// The address connected to (`HostName`, else the alias).
    pub host_name: String,
    /// TCP port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Private keys tried after the agent, in order.
    pub identity_files: Vec<PathBuf>,
    /// known_hosts files the host key is checked against.
    pub known_hosts: Vec<PathBuf>,
    /// Time allowed for connecting.
    pub connect_timeout: Duration,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// `~/x` with the home directory substituted.
fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), home()) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => path.to_path_buf(),
    }
}

impl SshTarget {
    /// Resolves the profile's host: profile values first (they come from the user), then the
    /// ssh config (`profile.ssh_config`, else `~/.ssh/config`), then OpenSSH's defaults.
    pub fn resolve(profile: &ClusterProfile) -> Result<SshTarget> {
        let config_path = profile
            .ssh_config
            .as_deref()
            .map(expand_tilde)
            .or_else(|| home().map(|h| h.join(".ssh").join("config")));
        let params = match config_path.filter(|p| p.is_file()) {
            Some(path) => {
                let file = std::fs::File::open(&path).map_err(Error::io("opening", &path))?;
                let mut reader = std::io::BufReader::new(file);
                let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
                let config = SshConfig::default()
                    .parse(&mut reader, rules)
                    .map_err(|e| Error::ConfigParse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                Some(config.query(&profile.host))
            }
            None => None,
        };
        if let Some(jump) = params.as_ref().and_then(|p| p.proxy_jump.as_ref()) {
            return Err(Error::Cluster {
                host: profile.host.clone(),
                message: format!(
                    "~/.ssh/config sets ProxyJump {}: not supported; point `host` at a machine reachable directly",
                    jump.join(",")
                ),
            });
        }
        let user = profile
            .user
            .clone()
            .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
            .or_else(|| std::env::var("USER").ok())
            .ok_or_else(|| Error::Cluster {
                host: profile.host.clone(),
                message: "no user name: set `user` in ~/.config/autoresearch/clusters.yaml, User in ~/.ssh/config, or $USER".into(),
            })?;
        let mut identity_files: Vec<PathBuf> = profile.identity_file.iter().cloned().collect();
        if let Some(files) = params.as_ref().and_then(|p| p.identity_file.clone()) {
            identity_files.extend(files);
        }
        if identity_files.is_empty() {
            if let Some(h) = home() {
                for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                    identity_files.push(h.join(".ssh").join(name));
                }
            }
        }
        let identity_files = identity_files.iter().map(|p| expand_tilde(p)).collect();
        let mut known_hosts: Vec<PathBuf> = profile.known_hosts.iter().cloned().collect();
        if known_hosts.is_empty() {
            let configured = params
                .as_ref()
                .and_then(|p| p.unsupported_fields.get("userknownhostsfile"))
                .cloned()
                .unwrap_or_default();
            known_hosts.extend(configured.iter().map(PathBuf::from));
        }
        if known_hosts.is_empty() {
            if let Some(h) = home() {
                known_hosts.push(h.join(".ssh").join("known_hosts"));
            }
        }
        let known_hosts = known_hosts.iter().map(|p| expand_tilde(p)).collect();
        Ok(SshTarget {
            alias: profile.host.clone(),
            host_name: params
                .as_ref()
                .and_then(|p| p.host_name.clone())
                .unwrap_or_else(|| profile.host.clone()),
            port: profile
                .port
                .or_else(|| params.as_ref().and_then(|p| p.port))
                .unwrap_or(22),
            user,
            identity_files,
            known_hosts,
            connect_timeout: params
                .as_ref()
                .and_then(|p| p.connect_timeout)
                .unwrap_or(CONNECT_TIMEOUT),
        })
    }

    /// `user@host:port`, for messages.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host_name, self.port)
    }
}

/// An authenticated SSH connection.
pub struct SshRemote {
    target: SshTarget,
    session: Session,
    sftp: Option<Sftp>,
}

impl std::fmt::Debug for SshRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRemote")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl SshRemote {
    /// Connects, verifies the host key and authenticates; each failure is an error saying
    /// which step failed for which `user@host:port` and what to check.
    pub fn connect(target: SshTarget) -> Result<SshRemote> {
        let fail = |message: String| Error::Cluster {
            host: target.describe(),
            message,
        };
        let addrs: Vec<_> = (target.host_name.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve the host name: {e}")))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, target.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            fail(format!(
                "unreachable ({}; timeout {} s); check the host, port, VPN and that sshd runs",
                last.unwrap_or_else(|| "no address".into()),
                target.connect_timeout.as_secs()
            ))
        })?;
        let mut session = Session::new().map_err(|e| fail(format!("libssh2: {e}")))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(millis(target.connect_timeout));
        session
            .handshake()
            .map_err(|e| fail(format!("SSH handshake failed: {e}")))?;
        verify_host_key(&session, &target)?;
        authenticate(&session, &target)?;
        session.set_timeout(millis(OPERATION_TIMEOUT));
        session.set_keepalive(true, 30);
        Ok(SshRemote {
            target,
            session,
            sftp: None,
        })
    }

    /// Resolves the profile's host and connects.
    pub fn open(profile: &ClusterProfile) -> Result<SshRemote> {
        SshRemote::connect(SshTarget::resolve(profile)?)
    }

    /// The resolved target.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Changes the time allowed for each blocking operation (e.g. a long remote build).
    pub fn set_timeout(&self, timeout: Duration) {
        self.session.set_timeout(millis(timeout));
    }

    fn error(&self, message: String) -> Error {
        Error::Cluster {
            host: self.target.describe(),
            message,
        }
    }

    fn sftp(&mut self) -> Result<&Sftp> {
        if self.sftp.is_none() {
            let sftp = self
                .session
                .sftp()
                .map_err(|e| self.error(format!("cannot start SFTP: {e}")))?;
            self.sftp = Some(sftp);
        }
        self.sftp
            .as_ref()
            .ok_or_else(|| self.error("SFTP session missing".into()))
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Checks the server's key against every known_hosts file; only a match passes.
fn verify_host_key(session: &Session, target: &SshTarget) -> Result<()> {
    let fail = |message: String| Error::Cluster {
        host: target.describe(),
        message,
    };
    let (key, _) = session
        .host_key()
        .ok_or_else(|| fail("the server sent no host key".into()))?;
    let mut known = session
        .known_hosts()
        .map_err(|e| fail(format!("libssh2 known hosts: {e}")))?;
    let mut read_any = false;
    for file in target.known_hosts.iter().filter(|f| f.is_file()) {
        known
            .read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|e| fail(format!("cannot read known_hosts {}: {e}", file.display())))?;
        read_any = true;
    }
    let files = target
        .known_hosts
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let ssh_cmd = if target.port == 22 {
        format!("ssh {}@{}", target.user, target.host_name)
    } else {
        format!(
            "ssh -p {} {}@{}",
            target.port, target.user, target.host_name
        )
    };
    match known.check_port(&target.host_name, target.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(fail(format!(
            "HOST KEY MISMATCH: the key offered differs from the one in {files}; someone may be intercepting the connection, or the host was reinstalled. Not connecting."
        ))),
        CheckResult::NotFound if read_any => Err(fail(format!(
            "host key not in {files}; verify and add it by connecting once with `{ssh_cmd}`"
        ))),
        CheckResult::NotFound => Err(fail(format!(
            "no known_hosts file ({files}); verify and add the host key by connecting once with `{ssh_cmd}`"
        ))),
        CheckResult::Failure => Err(fail(format!(
            "could not check the host key against {files}"
        ))),
    }
}

/// Tries the agent's identities, then each existing key file; the error lists what was tried.
fn authenticate(session: &Session, target: &SshTarget) -> Result<()> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match session.agent() {
            Ok(mut agent) => {
                if agent.connect().is_ok() && agent.list_identities().is_ok() {
                    for id in agent.identities().unwrap_or_default() {
                        if agent.userauth(&target.user, &id).is_ok() && session.authenticated() {
                            return Ok(());
                        }
                        tried.push(format!("agent key {}", id.comment()));
                    }
                }
            }
            Err(e) => tried.push(format!("agent ({e})")),
        }
    }
    for key in target.identity_files.iter().filter(|k| k.is_file()) {
        match session.userauth_pubkey_file(&target.user, None, key, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(key.display().to_string()),
            Err(e) => tried.push(format!("{} ({})", key.display(), e.message())),
        }
    }
    let tried = if tried.is_empty() {
        format!(
            "no agent (SSH_AUTH_SOCK unset) and none of these key files exist: {}",
            target
                .identity_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!("tried {}", tried.join("; "))
    };
    Err(Error::Cluster {
        host: target.describe(),
        message: format!(
            "authentication failed: {tried}. Load your key into ssh-agent (passphrase-protected keys need it) or set identity_file"
        ),
    })
}

impl Remote for SshRemote {
    fn host(&self) -> &str {
        &self.target.alias
    }

    fn exec(&mut self, command: &str) -> Result<Output> {
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.error(format!("cannot open a channel: {e}")))?;
        channel
            .exec(command)
            .map_err(|e| self.error(format!("cannot run `{command}`: {e}")))?;
        let stdout = read_lossy(&mut channel, command)?;
        let stderr = read_lossy(channel.stderr(), command)?;
        channel
            .wait_close()
            .map_err(|e| self.error(format!("`{command}` did not finish: {e}")))?;
        let status = channel
            .exit_status()
            .map_err(|e| self.error(format!("no exit status for `{command}`: {e}")))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn list_files(&mut self, dir: &str) -> Result<Vec<RemoteFile>> {
        let mut files = Vec::new();
        let mut pending = vec![(PathBuf::from(dir), String::new())];
        while let Some((path, prefix)) = pending.pop() {
            let entries = match self.sftp()?.readdir(&path) {
                Ok(e) => e,
                // LIBSSH2_FX_NO_SUCH_FILE: nothing there yet
                Err(e) if matches!(e.code(), ssh2::ErrorCode::SFTP(2)) => continue,
                Err(e) => return Err(self.error(format!("cannot list {}: {e}", path.display()))),
            };
            for (child, stat) in entries {
                let Some(name) = child.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    continue;
                };
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                if stat.is_dir() {
                    pending.push((child, relative));
                } else if stat.is_file() {
                    files.push(RemoteFile {
                        relative,
                        size: stat.size.unwrap_or(0),
                        mtime: stat.mtime.unwrap_or(0),
                    });
                }
            }
        }
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(files)
    }

    fn write_file(&mut self, path: &str, bytes: &[u8], mode: i32) -> Result<()> {
        let parent = Path::new(path)
            .parent()
            .map_or_else(|| ".".to_string(), |p| p.display().to_string());
        let tmp = format!("{path}.upload-{}", std::process::id());
        self.exec(&format!("mkdir -p {}", shell_quote(&parent)))?
            .checked(&self.target.alias.clone(), "mkdir -p")?;
        {
            let sftp = self.sftp()?;
            let mut file = sftp
                .open_mode(
                    Path::new(&tmp),
                    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                    mode,
                    OpenType::File,
                )
                .map_err(|e| Error::Cluster {
                    host: self.target.describe(),
                    message: format!("cannot create {tmp}: {e}"),
                })?;
            file.write_all(bytes).map_err(|e| Error::Cluster {
                host: self.target.describe(),
                message: format!("writing {tmp}: {e}"),
            })?;
        }
        // `mv` replaces atomically on one file system (SFTP v3 rename refuses to overwrite)
        let host = self.target.alias.clone();
        self.exec(&format!(
            "mv -f {} {}",
            shell_quote(&tmp),
            shell_quote(path)
        ))?
        .checked(&host, "mv")
        .map(|_| ())
    }

    fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let describe = self.target.describe();
        let mut file = self
            .sftp()?
            .open(Path::new(path))
            .map_err(|e| Error::Cluster {
                host: describe.clone(),
                message: format!("cannot open {path}: {e}"),
            })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| Error::Cluster {
            host: describe,
            message: format!("reading {path}: {e}"),
        })?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_config_aliases_resolve_and_profile_values_win() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let config = tmp.path().join("config");
        std::fs::write(
            &config,
            "Host lengau\n  HostName lengau.chpc.ac.za\n  User jdoe\n  Port 2022\n  IdentityFile /keys/chpc\n  UserKnownHostsFile /keys/known\n  ConnectTimeout 7\n\nHost *\n  User nobody\n",
        )
        .map_err(Error::io("writing", &config))?;
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut profile = ClusterProfile::load(&configs, "chpc_lengau", None)?;
        profile.host = "lengau".into();
        profile.ssh_config = Some(config.clone());
        let target = SshTarget::resolve(&profile)?;
        assert_eq!(target.host_name, "lengau.chpc.ac.za");
        assert_eq!((target.port, target.user.as_str()), (2022, "jdoe"));
        assert_eq!(target.identity_files, [PathBuf::from("/keys/chpc")]);
        assert_eq!(target.known_hosts, [PathBuf::from("/keys/known")]);
        assert_eq!(target.connect_timeout, Duration::from_secs(7));

        profile.user = Some("other".into());
        profile.port = Some(22);
        profile.identity_file = Some("/mine".into());
        let target = SshTarget::resolve(&profile)?;
        assert_eq!((target.port, target.user.as_str()), (22, "other"));
        assert_eq!(target.identity_files[0], PathBuf::from("/mine"));

        std::fs::write(&config, "Host lengau\n  ProxyJump bastion\n")
            .map_err(Error::io("writing", &config))?;
        let err = SshTarget::resolve(&profile).unwrap_err().to_string();
        assert!(err.contains("ProxyJump"), "{err}");
        Ok(())
    }
}

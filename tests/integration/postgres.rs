//! A real, throwaway PostgreSQL for the tests (testing.md): `initdb` into a temporary directory
//! (as the unprivileged `postgres` user when the tests run as root: initdb refuses root), TLS on
//! with a certificate made for the test by its own CA, only TLS connections with SCRAM passwords
//! accepted from 127.0.0.1, started with `pg_ctl` on a free port and removed when dropped.
//! The emulated Aurora cluster has no server behind it: this is what the functions talk to.
//!
//! It behaves like Aurora for IAM database authentication as far as PostgreSQL can: the role
//! `rds_iam` exists from the start, and a member of it signs in over TLS from 127.0.0.1 without a
//! password check (`hostssl all +rds_iam … trust`, ahead of the SCRAM line), as on Aurora, where
//! such a login can sign in only with an IAM auth token. **Emulator gap:** Aurora verifies the
//! token (its SigV4 signature, its 15 minutes, `rds-db:connect` on the login in the caller's IAM
//! policy); the harness accepts any password for those logins. What the token looks like is a
//! unit test of payments-runtime (`db::iam`); who may sign it is tapctl's IAM policy, read back by
//! tapctl's own tests. A role outside `rds_iam` still needs its SCRAM password here, as there.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn pg_bin(tool: &str) -> PathBuf {
    let dir = std::env::var("TAPCTL_PG_BIN").unwrap_or_else(|_| BIN.to_string());
    Path::new(&dir).join(tool)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a command as the server's owner (postgres when we are root).
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// The CA that signed the server's certificate (what the functions must trust).
    pub ca: PathBuf,
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new().prefix("tapctl-pg").tempdir().expect("tempdir");
        let d = dir.path();
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        // A CA and a server certificate for 127.0.0.1 signed by it (P-256: quick to make).
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext");
        let openssl = |args: &[&str], what: &str| {
            let mut c = Command::new("openssl");
            c.current_dir(d).args(args);
            run(c, what);
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=tapctl test CA"],
            ]
            .concat(),
            "CA",
        );
        openssl(
            &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
            "CSR",
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            "server certificate",
        );
        std::fs::write(d.join("pwfile"), "postgres-test-superuser\n").expect("pwfile");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(d);
                    c
                },
                "chown",
            );
        }
        let mut initdb = as_owner(&pg_bin("initdb"));
        initdb
            .arg("-D")
            .arg(d.join("data"))
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", d.join("pwfile").display()));
        run(initdb, "initdb");
        // fsync off is safe for a throwaway server (the OS keeps what was written); commits stay
        // synchronous, because the tests stop the server abruptly and must not lose them.
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             ssl_min_protocol_version = 'TLSv1.2'\npassword_encryption = 'scram-sha-256'\n\
             max_connections = 200\nlog_statement = 'all'\nfsync = off\nfull_page_writes = off\n",
            dir = d.display()
        );
        let data = d.join("data");
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        pgconf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pgconf).expect("conf");
        // TLS only over TCP: a plaintext connection is refused outright, as rds.force_ssl=1 does.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all +rds_iam 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 0.0.0.0/0 reject\n",
        )
        .expect("hba");
        let pg = Postgres { ca: d.join("ca.crt"), port, dir };
        pg.start_server();
        // Aurora's built-in role for IAM database authentication.
        pg.psql("postgres", "CREATE ROLE rds_iam NOLOGIN");
        pg.psql("postgres", "CREATE DATABASE payments");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn start_server(&self) {
        let mut c = as_owner(&pg_bin("pg_ctl"));
        c.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "start"]);
        run(c, "pg_ctl start");
    }

    /// Stops the server at once (open connections are cut, as in a crash or failover).
    pub fn stop_server(&self) {
        let mut c = as_owner(&pg_bin("pg_ctl"));
        c.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop");
    }

    /// The server's log (every statement: the harness sets log_statement = 'all').
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SQL as the superuser over the local socket; returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut c = as_owner(&pg_bin("psql"));
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"]).arg(self.dir.path()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ]);
        let out = c.output().expect("psql");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut c = as_owner(&pg_bin("pg_ctl"));
        c.arg("-D").arg(self.data()).args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

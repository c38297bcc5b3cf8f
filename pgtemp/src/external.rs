//! An existing server (LESSOR_TEST_DATABASE_URL).

use std::str::FromStr;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::ENV_DATABASE_URL;
use crate::sql::{block_on, execute, query_rows, quote_ident};
use crate::test_db::{Superuser, TestDb};
use crate::util::{database_name, redact_url};

pub(crate) struct External {
    config: Config,
    host: String,
    port: u16,
    user: String,
    password: String,
    query: String,
    maintenance_db: String,
}

impl External {
    pub(crate) fn connect(url: &str) -> Result<External, String> {
        let config = Config::from_str(url).map_err(|e| format!("{ENV_DATABASE_URL} does not parse: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(_) => return Err(format!("{ENV_DATABASE_URL} must name a TCP host, not a unix socket")),
            None => return Err(format!("{ENV_DATABASE_URL} names no host")),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().ok_or_else(|| format!("{ENV_DATABASE_URL} names no user"))?.to_owned();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .ok_or_else(|| format!("{ENV_DATABASE_URL} has no password"))?;
        let query = url.find('?').map(|i| url[i..].to_owned()).unwrap_or_default();
        let maintenance_db = config.get_dbname().unwrap_or("postgres").to_owned();
        let external = External { config, host, port, user, password, query, maintenance_db };
        let probe = external.superuser().config(&external.maintenance_db);
        block_on(query_rows(&probe, "SELECT 1"))
            .map_err(|e| format!("cannot use {ENV_DATABASE_URL} ({}): {e}", redact_url(url)))?;
        Ok(external)
    }

    fn superuser(&self) -> Superuser {
        Superuser::Url(Box::new(self.config.clone()))
    }

    pub(crate) fn database(&self, name_hint: &str) -> TestDb {
        let dbname = database_name(name_hint);
        let config = self.superuser().config(&self.maintenance_db);
        let sql = format!("CREATE DATABASE {}", quote_ident(&dbname));
        block_on(execute(&config, &sql)).unwrap_or_else(|e| panic!("{e} (the {ENV_DATABASE_URL} user needs CREATEDB)"));
        TestDb {
            host: self.host.clone(),
            port: self.port,
            dbname,
            admin_user: self.user.clone(),
            admin_password: self.password.clone(),
            url_query: self.query.clone(),
            superuser: self.superuser(),
            ca_cert: None,
            drop_on_drop: true,
        }
    }
}

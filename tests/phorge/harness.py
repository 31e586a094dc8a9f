#!/usr/bin/env python3
"""A real Phorge on loopback for clinicbot's real-server tests.

    python3 tests/phorge/harness.py start   # install (if needed), unpack, run, upgrade storage, seed
    python3 tests/phorge/harness.py env     # shell exports: eval "$(python3 tests/phorge/harness.py env)"
    python3 tests/phorge/harness.py status  # is it up? (exit 0 when Conduit answers)
    python3 tests/phorge/harness.py stop    # stop nginx, php-fpm and MariaDB cleanly

Needs root on Debian 12 (it installs PHP 8.2, MariaDB and nginx from Debian's packages when they are
missing). Everything else lives in one private folder, ``$CLINICBOT_PHORGE_HOME`` (default
``/tmp/clinicbot-phorge``): the unpacked sources, MariaDB's datadir, sockets, pid files, logs and the
seed manifest. The Phorge and Arcanist sources come from ``$CLINICBOT_PHORGE_SOURCES`` (a folder with the
tarballs, or with unpacked ``phorge/`` + ``arcanist/`` checkouts), else from ``../shared/phorge/``
relative to the repository. Nothing listens beyond 127.0.0.1.

Running ``start`` again reuses a running, seeded server in about a second; after a reboot it restarts
the daemons and keeps the data (seeding happens once: the manifest marks it done).
Only the standard library is used, so the harness runs before clinicbot's dependencies are installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import seed  # noqa: E402  (tests/phorge/seed.py, beside this file)

PACKAGES = [
    "php8.2-fpm", "php8.2-cli", "php8.2-mysql", "php8.2-curl", "php8.2-gd", "php8.2-mbstring",
    "php8.2-zip", "php8.2-intl", "php8.2-apcu", "mariadb-server", "nginx",
]
PHORGE_COMMIT = "07c1a51"
DB_USER = "phorge"
DB_PASS = "phorge-harness"  # a throwaway account of a loopback-only database


class HarnessError(Exception):
    """One clear line for the operator; exit 2."""


def log(msg: str) -> None:
    print(f"[phorge-harness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Layout:
    def __init__(self) -> None:
        self.home = Path(os.environ.get("CLINICBOT_PHORGE_HOME") or "/tmp/clinicbot-phorge")
        self.port = int(os.environ.get("CLINICBOT_PHORGE_PORT") or 19380)
        self.db_port = int(os.environ.get("CLINICBOT_PHORGE_DB_PORT") or self.port + 1)
        self.src = self.home / "src"
        self.phorge = self.src / "phorge"
        self.datadir = self.home / "mysql"
        self.run = self.home / "run"
        self.logs = self.home / "log"
        self.etc = self.home / "etc"
        self.tmp = self.home / "tmp"
        self.manifest = self.home / "manifest.json"
        self.db_socket = self.run / "mysqld.sock"
        self.fpm_socket = self.run / "php-fpm.sock"
        self.pids = {"mariadb": self.run / "mysqld.pid", "php-fpm": self.run / "php-fpm.pid",
                     "nginx": self.run / "nginx.pid"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


# --------------------------------------------------------------------------- helpers

def run(cmd: list[str], *, input: str | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None, quiet: bool = True) -> str:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise HarnessError(f"{shlex.join(cmd[:4])} failed (exit {proc.returncode}): " + " | ".join(tail))
    if not quiet and proc.stdout.strip():
        log(proc.stdout.strip().splitlines()[-1])
    return proc.stdout


def pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def wait_for(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise HarnessError(f"{what} did not come up within {timeout:.0f}s (logs in the harness folder's log/)")


def conduit_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "api/conduit.ping", timeout=5) as resp:
            return json.load(resp).get("error_code") is None
    except (OSError, ValueError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------- install / unpack

def ensure_packages() -> None:
    missing = []
    for pkg in PACKAGES:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if "install ok installed" not in proc.stdout:
            missing.append(pkg)
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise HarnessError(f"missing Debian packages {' '.join(missing)}: run the harness as root on Debian 12")
    log(f"installing {' '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    # policy-rc.d 101: the packages' own services must not start (we run private daemons on loopback).
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    if not had_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)


def sources_dir() -> Path:
    env = os.environ.get("CLINICBOT_PHORGE_SOURCES")
    path = Path(env) if env else REPO.parent / "shared" / "phorge"
    if not path.is_dir():
        raise HarnessError(f"no Phorge sources at {path}: set CLINICBOT_PHORGE_SOURCES to a folder with "
                           "phorge-*.tar.xz + arcanist-*.tar.xz (or unpacked phorge/ + arcanist/)")
    return path


def unpack(lay: Layout) -> None:
    if (lay.phorge / "scripts" / "init" / "init-script.php").exists() and (lay.src / "arcanist").is_dir():
        return
    origin = sources_dir()
    lay.src.mkdir(parents=True, exist_ok=True)
    for name in ("phorge", "arcanist"):
        if (lay.src / name).exists():
            shutil.rmtree(lay.src / name)
        if (origin / name).is_dir():
            shutil.copytree(origin / name, lay.src / name, symlinks=True)
            continue
        tarballs = sorted(origin.glob(f"{name}-*.tar.*"))
        if not tarballs:
            raise HarnessError(f"{origin}: neither {name}/ nor {name}-*.tar.xz found "
                               "(CLINICBOT_PHORGE_SOURCES must hold both projects)")
        run(["tar", "-xf", str(tarballs[-1]), "-C", str(lay.src)])
        if not (lay.src / name).is_dir():
            raise HarnessError(f"{tarballs[-1]} did not unpack into a folder named {name}/")
    log(f"unpacked Phorge and Arcanist from {origin}")


# --------------------------------------------------------------------------- daemons

def start_mariadb(lay: Layout) -> None:
    if pid_alive(lay.pids["mariadb"]):
        return
    fresh = not (lay.datadir / "mysql").is_dir()
    if fresh:
        lay.datadir.mkdir(parents=True, exist_ok=True)
        run(["mariadb-install-db", "--no-defaults", f"--datadir={lay.datadir}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"])
    lay.db_socket.unlink(missing_ok=True)
    cmd = ["mariadbd", "--no-defaults", f"--datadir={lay.datadir}", f"--socket={lay.db_socket}",
           f"--pid-file={lay.pids['mariadb']}", f"--log-error={lay.logs / 'mariadb.log'}",
           f"--port={lay.db_port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--user=root",
           "--innodb-buffer-pool-size=256M", "--max-allowed-packet=64M", "--sql-mode=STRICT_ALL_TABLES",
           "--innodb-flush-log-at-trx-commit=2", "--local-infile=0"]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    wait_for("MariaDB", lambda: lay.db_socket.exists() and pid_alive(lay.pids["mariadb"]) is not None)
    if fresh:
        sql(lay, f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}';"
                 f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;")
    log(f"MariaDB up on 127.0.0.1:{lay.db_port}")


def sql(lay: Layout, statement: str) -> str:
    return run(["mariadb", "--no-defaults", "-S", str(lay.db_socket), "-uroot", "-N", "-B", "-e", statement])


FPM_CONF = """[global]
pid = {run}/php-fpm.pid
error_log = {logs}/php-fpm.log
daemonize = yes

[phorge]
user = root
group = root
listen = {run}/php-fpm.sock
listen.mode = 0660
pm = static
pm.max_children = 4
clear_env = no
php_admin_value[post_max_size] = 32M
php_admin_value[upload_max_filesize] = 32M
php_admin_value[date.timezone] = UTC
php_admin_value[error_log] = {logs}/php-errors.log
"""

NGINX_CONF = """daemon on;
user root root;
worker_processes 1;
pid {run}/nginx.pid;
error_log {logs}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {logs}/nginx-access.log;
  client_body_temp_path {tmp}/nginx-body;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  proxy_temp_path {tmp}/nginx-proxy;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  client_max_body_size 32m;
  server {{
    listen 127.0.0.1:{port};
    server_name 127.0.0.1;
    root {webroot};
    location / {{
      index index.php;
      rewrite ^/(.*)$ /index.php?__path__=/$1 last;
    }}
    location = /index.php {{
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:{run}/php-fpm.sock;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param REDIRECT_STATUS 200;
      fastcgi_read_timeout 120s;
    }}
  }}
}}
"""


def start_web(lay: Layout) -> None:
    lay.etc.mkdir(parents=True, exist_ok=True)
    values = {"run": lay.run, "logs": lay.logs, "tmp": lay.tmp, "port": lay.port, "webroot": lay.phorge / "webroot"}
    (lay.etc / "php-fpm.conf").write_text(FPM_CONF.format(**values))
    (lay.etc / "nginx.conf").write_text(NGINX_CONF.format(**values))
    if not pid_alive(lay.pids["php-fpm"]):
        lay.fpm_socket.unlink(missing_ok=True)
        run(["php-fpm8.2", "--allow-to-run-as-root", "--fpm-config", str(lay.etc / "php-fpm.conf"),
             "--prefix", str(lay.home)])
        wait_for("php-fpm", lambda: lay.fpm_socket.exists())
    if not pid_alive(lay.pids["nginx"]):
        run(["nginx", "-c", str(lay.etc / "nginx.conf"), "-p", str(lay.home), "-e", str(lay.logs / "nginx-error.log")])
    wait_for(f"Phorge at {lay.url}", lambda: conduit_ping(lay.url), timeout=60)
    log(f"nginx + php-fpm up: {lay.url}")


def stop(lay: Layout) -> None:
    order = [("nginx", signal.SIGQUIT), ("php-fpm", signal.SIGQUIT), ("mariadb", signal.SIGTERM)]
    for name, sig in order:
        pid = pid_alive(lay.pids[name])
        if pid is None:
            continue
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise HarnessError(f"{name} (pid {pid}) did not stop within 60s; see {lay.logs}")
        log(f"stopped {name} (pid {pid})")


# --------------------------------------------------------------------------- phorge config

def phorge_bin(lay: Layout, tool: str, *args: str) -> str:
    return run([str(lay.phorge / "bin" / tool), *args], cwd=lay.phorge)


def configure(lay: Layout) -> None:
    marker = lay.home / ".configured"
    wanted = json.dumps([lay.port, lay.db_port])
    if marker.exists() and marker.read_text() == wanted:
        return
    settings = {
        "mysql.host": "127.0.0.1",
        "mysql.port": str(lay.db_port),
        "mysql.user": DB_USER,
        "mysql.pass": DB_PASS,
        "phabricator.base-uri": lay.url,
        "phabricator.timezone": "UTC",
        "storage.local-disk.path": str(lay.home / "files"),
        "maniphest.points": json.dumps({"enabled": True, "label": "Story Points"}),
        "maniphest.statuses": json.dumps(seed.STATUSES),
        "pygments.enabled": "false",
        "metamta.default-address": "noreply@example.com",
    }
    (lay.home / "files").mkdir(exist_ok=True)
    for key, value in settings.items():
        phorge_bin(lay, "config", "set", key, value)
    marker.write_text(wanted)
    log("configured Phorge (bin/config set)")


def upgrade_storage(lay: Layout) -> None:
    marker = lay.home / ".storage-upgraded"
    if marker.exists():
        return
    t0 = time.monotonic()
    phorge_bin(lay, "storage", "upgrade", "--force")
    marker.write_text(PHORGE_COMMIT)
    log(f"bin/storage upgrade --force: {time.monotonic() - t0:.0f}s")


# --------------------------------------------------------------------------- commands

def cmd_start(lay: Layout) -> None:
    t0 = time.monotonic()
    for name in ("mariadb", "php-fpm", "nginx"):
        if not pid_alive(lay.pids[name]):
            break
    else:
        if lay.manifest.exists() and conduit_ping(lay.url):
            log(f"reusing the running Phorge at {lay.url} ({time.monotonic() - t0:.1f}s)")
            return
    if os.geteuid() != 0:
        raise HarnessError("the harness runs MariaDB, php-fpm and nginx as root: run it as root (Debian 12)")
    ensure_packages()
    for d in (lay.home, lay.run, lay.logs, lay.etc, lay.tmp):
        d.mkdir(parents=True, exist_ok=True)
    lay.home.chmod(0o700)
    unpack(lay)
    start_mariadb(lay)
    configure(lay)
    upgrade_storage(lay)
    start_web(lay)
    if not lay.manifest.exists():
        t1 = time.monotonic()
        seed.seed(lay.phorge, lay.url, lay.manifest, lambda s: sql(lay, s))
        log(f"seeded in {time.monotonic() - t1:.0f}s; manifest {lay.manifest}")
    log(f"Phorge {PHORGE_COMMIT} ready at {lay.url} in {time.monotonic() - t0:.0f}s")


@contextlib.contextmanager
def exclusive(lay: Layout) -> Iterator[None]:
    """One start/stop at a time per harness folder (two test runs may start it at once)."""
    lay.home.mkdir(parents=True, exist_ok=True)
    with open(lay.home.parent / f".{lay.home.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def env_lines(lay: Layout) -> list[str]:
    if not lay.manifest.exists():
        raise HarnessError(f"no manifest at {lay.manifest}: run tests/phorge/harness.sh start first")
    manifest = json.loads(lay.manifest.read_text())
    values = {
        "CLINICBOT_PHORGE_URL": manifest["url"],
        "CLINICBOT_PHORGE_MANIFEST": str(lay.manifest),
        "CLINICBOT_PHORGE_HOME": str(lay.home),
        "CLINICBOT_PHORGE_ADMIN_TOKEN": manifest["users"]["admin"]["token"],
        "CLINICBOT_PHORGE_BOT_TOKEN": manifest["users"]["clinicbot"]["token"],
    }
    return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


def main(argv: list[str]) -> int:
    usage = "usage: harness.py start|stop|env|status"
    if len(argv) != 1 or argv[0] not in {"start", "stop", "env", "status"}:
        print(usage, file=sys.stderr)
        return 2
    lay = Layout()
    # The daemons live in /usr/sbin, which a CI user's PATH may lack.
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    try:
        if argv[0] in {"start", "stop"}:
            with exclusive(lay):
                cmd_start(lay) if argv[0] == "start" else stop(lay)
        elif argv[0] == "env":
            print("\n".join(env_lines(lay)))
        else:
            up = conduit_ping(lay.url) and lay.manifest.exists()
            print(f"Phorge at {lay.url}: {'up, seeded' if up else 'not running'}")
            return 0 if up else 1
    except (HarnessError, seed.SeedError) as exc:
        print(f"phorge harness: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. Conduit unreachable while seeding
        print(f"phorge harness: {exc} (logs in {lay.logs})", file=sys.stderr)
        return 2
    except Exception as exc:  # one line; CLINICBOT_PHORGE_DEBUG=1 shows the traceback
        if os.environ.get("CLINICBOT_PHORGE_DEBUG"):
            raise
        print(f"phorge harness: unexpected {type(exc).__name__}: {exc} (logs in {lay.logs}; "
              "CLINICBOT_PHORGE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The deployment files work as written: the service user and directories
(sysusers.d, tmpfiles.d), the unit's command run as that user, the nginx
site checked beside Debian's default one, the container image's entrypoint
and the Kubernetes manifests' arguments and probes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

from .support import features
from .support.deploy import DEBIAN_DEFAULT_SITE, DEPLOY, NGINX_CONF, PREFIX, listening
from .support.fixtures import (
    PROJECT_ROOT,
    StoreTestCase,
    brz_command,
    http_request,
    plugin_env,
    stop_process,
)

DOCKERFILE = os.path.join(PROJECT_ROOT, "examples", "deploy", "Dockerfile")
KUBERNETES = os.path.join(PROJECT_ROOT, "examples", "kubernetes", "janitor-store.yaml")
#: The uid and gid systemd-sysusers gives the service user on a fresh system
#: (the first free system id; the Dockerfile uses the same).
SERVICE_ID = 999


def require_root(test: StoreTestCase) -> None:
    if os.getuid() != 0:
        test.skipTest("needs root (changes owners, binds port 80)")


def unit_settings(name: str) -> tuple[dict[str, str], str]:
    """The ``Environment=`` settings and the ``ExecStart=`` of unit ``name``."""
    env, start = {}, ""
    with open(os.path.join(DEPLOY, name)) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key == "Environment":
                var, _, val = value.partition("=")
                env[var] = val
            elif key == "ExecStart":
                start = value
    return env, start


class ServiceUserTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        if not os.path.isdir(DEPLOY):
            self.skipTest(f"examples/ is not beside this installation ({DEPLOY})")

    def test_sysusers_and_tmpfiles_make_user_and_directories(self) -> None:
        features.require(self, features.SYSTEMD_SYSUSERS)
        require_root(self)
        root = self.path("root")
        for kind in ("sysusers", "tmpfiles"):
            os.makedirs(os.path.join(root, "etc", f"{kind}.d"))
            shutil.copy(
                os.path.join(DEPLOY, f"janitor-store.{kind}"),
                os.path.join(root, "etc", f"{kind}.d", "janitor-store.conf"),
            )
        # the commands of the comments, in a scratch root
        subprocess.run(["systemd-sysusers", f"--root={root}"], check=True)
        subprocess.run(
            ["systemd-tmpfiles", f"--root={root}", "--create", "janitor-store.conf"],
            check=True,
        )
        with open(os.path.join(root, "etc", "passwd")) as f:
            self.assertIn(
                f"janitor-store:x:{SERVICE_ID}:{SERVICE_ID}:Debian Janitor bzr store:"
                "/var/lib/janitor-store:/usr/sbin/nologin",
                f.read(),
            )
        store = os.stat(os.path.join(root, "srv", "bzr"))
        self.assertEqual(
            (store.st_uid, store.st_gid, store.st_mode & 0o777),
            (SERVICE_ID, SERVICE_ID, 0o750),
        )
        etc = os.stat(os.path.join(root, "etc", "janitor-store"))
        self.assertEqual((etc.st_uid, etc.st_gid), (0, SERVICE_ID))

    def test_environment_file_names_only_settings_the_store_reads(self) -> None:
        with open(os.path.join(DEPLOY, "environment")) as f:
            names = re.findall(r"^#?([A-Z][A-Z_]+)=", f.read(), re.MULTILINE)
        self.assertIn("DATABASE_URL", names)
        package = os.path.join(PROJECT_ROOT, "breezy_janitor_store")
        source = ""
        for top, dirs, files in os.walk(package):  # the library, not its tests
            dirs[:] = [d for d in dirs if d != "tests"]
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(top, name)) as f:
                        source += f.read()
        for name in names:
            self.assertIn(f'"{name}"', source, name)

    def test_serve_unit_command_runs_as_the_service_user(self) -> None:
        """``janitor-store.service``'s command and environment, as uid 999
        (paths moved to scratch directories, any free port)."""
        features.require(self, features.SETPRIV)
        require_root(self)
        env, start = unit_settings("janitor-store.service")
        storage, home = self.path("srv-bzr"), self.path("var-lib")
        for path in (storage, home):
            os.mkdir(path)
            os.chown(path, SERVICE_ID, SERVICE_ID)
        os.chmod(self.tmp, 0o755)

        def moved(text: str) -> str:
            return (
                text.replace(PREFIX, os.path.dirname(sys.executable) + "/")
                .replace("/srv/bzr", storage)
                .replace("/var/lib/janitor-store", home)
            )

        env = {k: moved(v) for k, v in env.items()}
        env.update(BZR_STORE_ADMIN_PORT="0", BZR_STORE_PUBLIC_PORT="0")
        run_env = {**plugin_env(), **env}
        for k in ("BRZ_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "BRZ_LOG"):
            run_env.pop(k, None)
        run_env.update({k: v for k, v in env.items()})
        command = [
            "setpriv",
            f"--reuid={SERVICE_ID}",
            f"--regid={SERVICE_ID}",
            "--clear-groups",
            *shlex.split(moved(start)),
        ]
        proc = subprocess.Popen(
            command,
            env=run_env,
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(stop_process, proc, signal.SIGKILL, 10)
        admin = proc.stdout.readline().decode().strip()
        public = proc.stdout.readline().decode().strip()
        if not admin:
            self.fail(proc.stderr.read().decode())
        self.assertEqual(http_request(admin + "health")[0], 200)
        self.assertEqual(http_request(public + "ready")[0], 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)
        log = proc.stderr.read().decode()
        self.assertIn("forwarding headers believed from: 127.0.0.1,::1", log)
        self.assertTrue(log.rstrip().endswith("stopped"), log)
        # breezy's own log went where the unit says, as the service user
        self.assertEqual(os.stat(env["BRZ_LOG"]).st_uid, SERVICE_ID)


class NginxVerbatimTests(StoreTestCase):
    def test_nginx_t_beside_debian_s_default_site(self) -> None:
        """The site as installed (conf.d, unchanged) passes ``nginx -t``
        next to Debian's default site on any machine."""
        features.require(self, features.NGINX)
        require_root(self)
        if not os.path.exists(DEBIAN_DEFAULT_SITE):
            self.skipTest("no Debian default site")
        if listening(80) or listening(8929):
            self.skipTest("port 80 or 8929 is in use here")
        prefix = self.path("nginx")
        os.mkdir(prefix)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
                "events { worker_connections 64; }\n"
                "http {\n    include /etc/nginx/mime.types;\n"
                f"    include {NGINX_CONF};\n    include {DEBIAN_DEFAULT_SITE};\n}}\n"
            )
        proc = subprocess.run(
            ["/usr/sbin/nginx", "-t", "-p", prefix, "-c", conf],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("test is successful", proc.stderr)


def dockerfile() -> tuple[list[str], dict[str, str], list[int], str]:
    """ENTRYPOINT, ENV, EXPOSEd ports and VOLUME of the Dockerfile."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    entrypoint, env, ports, volume = [], {}, [], ""
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word == "EXPOSE":
            ports.append(int(rest))
        elif word == "VOLUME":
            volume = rest.strip()
    return entrypoint, env, ports, volume


class ContainerTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        if not os.path.exists(DOCKERFILE):
            self.skipTest("needs the source checkout (Dockerfile)")
        features.require(self, features.YAML)

    def manifests(self) -> list[dict]:
        import yaml

        with open(KUBERNETES) as f:
            return [d for d in yaml.safe_load_all(f) if d]

    def test_image_and_manifests_agree(self) -> None:
        entrypoint, env, ports, volume = dockerfile()
        self.assertEqual(entrypoint[:3], ["brz", "janitor-store", "serve"])
        self.assertIn("--port=9929", entrypoint)
        self.assertIn("--public-port=9930", entrypoint)
        self.assertEqual(ports, [9929, 9930])
        self.assertEqual(env["BZR_STORE_PATH"], volume)
        docs = {d["kind"]: d for d in self.manifests()}
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(named, {"admin": 9929, "public": 9930})
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/health")
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/ready")
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "bzr"]
        self.assertEqual(mount["mountPath"], volume)
        claim = docs["PersistentVolumeClaim"]
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteMany"])
        self.assertGreater(docs["Deployment"]["spec"]["replicas"], 1)
        self.assertEqual(pod["securityContext"]["runAsUser"], SERVICE_ID)

    def test_entrypoint_with_the_manifest_s_arguments_serves(self) -> None:
        """The image's command and the manifest's arguments and environment,
        run here (ports and address moved to free loopback ones)."""
        entrypoint, env, _, _ = dockerfile()
        (deployment,) = [d for d in self.manifests() if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        args = [a for a in container["args"] if not a.startswith("--config=")]
        moved = {
            "--port=9929": "--port=0",
            "--public-port=9930": "--public-port=0",
            "--listen-address=0.0.0.0": "--listen-address=127.0.0.1",
        }
        command = [moved.get(a, a) for a in entrypoint + args]
        run_env = plugin_env(**{**env, "BZR_STORE_PATH": self.storage_dir})
        run_env["HOME"] = self.home
        for item in container["env"]:
            if "value" in item:
                run_env[item["name"]] = item["value"]
        self.assertEqual(command[0], "brz")
        proc = subprocess.Popen(
            [*brz_command(), *command[1:]],
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(stop_process, proc, signal.SIGKILL, 10)
        admin = proc.stdout.readline().decode().strip()
        public = proc.stdout.readline().decode().strip()
        if not admin:
            self.fail(proc.stderr.read().decode())
        self.assertEqual(http_request(admin + "health")[0], 200)
        self.assertEqual(http_request(public + "ready")[0], 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)
        lines = proc.stderr.read().decode().splitlines()
        records = [json.loads(line) for line in lines]  # --log-format=json
        self.assertIn(
            f"storage directory: {self.storage_dir}", [r["message"] for r in records]
        )

"""JupyterHub for the course on one server (started by `bnn-teach hub`; INSTRUCTORS.md: "A class on JupyterHub").

Local Unix accounts: the instructor (``BNN_TEACH_HUB_INSTRUCTOR``, default ``instructor``), who grades, and the
members of the Unix group ``BNN_TEACH_HUB_GROUP`` (default ``bnn_teach``), the students; they log in with their
Unix password (PAM). Each user's server runs as that user, from the course's environment (the Python that runs
the hub), in JupyterLab. nbgrader's exchange is ``$BNN_TEACH_HUB_STATE/exchange`` (default
``/srv/bnn_teach_hub``): students fetch and submit there through the Assignments tab, the instructor releases,
collects and returns feedback there with ``bnn-teach grade`` in their copy of the course
(``~instructor/bnn_teach``, ``BNN_TEACH_HUB_COURSE``). Students' servers have no Formgrader.
"""
import grp
import os
import pwd
import shutil
import sys

c = get_config()  # noqa: F821 - JupyterHub's config loader defines get_config

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ.get("BNN_TEACH_HUB_STATE", "/srv/bnn_teach_hub")
INSTRUCTOR = os.environ.get("BNN_TEACH_HUB_INSTRUCTOR", "instructor")
GROUP = os.environ.get("BNN_TEACH_HUB_GROUP", "bnn_teach")
BIN = os.path.dirname(sys.executable)  # the course's environment: jupyterhub-singleuser, nbgrader, bnn-teach


def course_of(user):
    """The instructor's copy of the course (a clone of the repository, owned by the instructor)."""
    return os.environ.get("BNN_TEACH_HUB_COURSE") or os.path.join(pwd.getpwnam(user).pw_dir, "bnn_teach")


def students():
    try:
        return set(grp.getgrnam(GROUP).gr_mem)
    except KeyError:
        return set()


# who may log in: the instructor and the group's members (read again by PAM at each login)
c.Authenticator.allowed_users = {INSTRUCTOR} | students()
c.Authenticator.admin_users = {INSTRUCTOR}
c.LocalAuthenticator.allowed_groups = {GROUP}

# where the hub listens and keeps its state (its database, cookie secret and the proxy's pid)
c.JupyterHub.bind_url = "http://{}:{}".format(os.environ.get("BNN_TEACH_HUB_IP", "127.0.0.1"),
                                              os.environ.get("BNN_TEACH_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("BNN_TEACH_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{}".format(os.environ.get("BNN_TEACH_HUB_PROXY_API_PORT", "8001"))
c.JupyterHub.db_url = "sqlite:///" + os.path.join(STATE, "hub", "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "hub", "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE, "hub", "proxy.pid")
proxy = os.path.join(sys.prefix, "node", "node_modules", ".bin", "configurable-http-proxy")  # `make hub` puts it here
c.ConfigurableHTTPProxy.command = [proxy if os.path.exists(proxy) else shutil.which("configurable-http-proxy")
                                   or "configurable-http-proxy"]
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# each user's server: JupyterLab in their home, as their Unix user, from the course's environment
c.Spawner.cmd = [os.path.join(BIN, "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
c.Spawner.environment = {
    "PATH": BIN + os.pathsep + "/usr/local/bin:/usr/bin:/bin",
    "BNN_TEACH_EXCHANGE": os.path.join(STATE, "exchange"),
    "MPLBACKEND": "Agg",
}
for name in ("BNN_TEACH_DATA", "BNN_TEACH_FAST"):
    if name in os.environ:
        c.Spawner.environment[name] = os.environ[name]


def pre_spawn_hook(spawner):
    """The instructor works in the course's folder (the Formgrader reads its nbgrader_config.py there); a
    student in their home, with the student's nbgrader configuration and no Formgrader."""
    if spawner.user.name == INSTRUCTOR:
        spawner.notebook_dir = os.path.join(course_of(INSTRUCTOR), "course")
    else:
        spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_PATH": os.path.join(HERE, "student")}


c.Spawner.pre_spawn_hook = pre_spawn_hook

# Local workerd configuration for the code-mode Worker (`cargo xtask workerd` runs it).
# `workerd serve --experimental` is required: the worker_loader binding is experimental.
# The "http" socket is normally passed as an inherited descriptor (--socket-fd=http=N), so
# the address below is only a default. Outbound network is denied to the Worker and to the
# Dynamic Workers it loads.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .codeMode),
    (name = "nonet", network = (allow = [])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "main") ],
);

const codeMode :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "guest-prelude.txt", text = embed "guest-prelude.txt"),
  ],
  compatibilityDate = "2025-06-01",
  bindings = [
    (name = "LOADER", workerLoader = ()),
    (name = "AUTH_TOKEN", fromEnvironment = "CODE_MODE_WORKER_TOKEN"),
  ],
  globalOutbound = "nonet",
);

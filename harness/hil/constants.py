"""Guide-shaped programs: find the settings a program hard-codes, and rewrite only them.

A program shaped like the guide (and like broker vendors' examples) keeps its settings in
constants at the top (``SERVER = "broker.emqx.io"``), its Wi-Fi credentials in ``wifi.py``
and its CA certificate in a file it opens by name. :class:`ProgramSource` parses every
file with Python's :mod:`ast` and finds, for each setting, the exact source span of the
value that carries it:

1. the name the manifest maps (``[constants] server = "BROKER"``), else
2. what the program actually passes: the arguments of ``MQTTClient(...)``, of the WLAN's
   ``connect(ssid, password)``, of ``subscribe``/``publish``, of ``open(<CA file>)`` and of
   the ``sleep`` in the publish loop, followed through names to their assignment (in the
   function, the module, or the module they are imported from), else
3. the guide's constant names (``SERVER``, ``PORT``, ``CLIENT_ID``, ``USERNAME``/``USER``, …).

:meth:`ProgramSource.rewrite` replaces those spans with the run's values and leaves every
other byte as written. A file CPython cannot parse is left alone (the board will say what
is wrong with it); its constants are then simply not found.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError

# The guide's names first; the others are common in vendors' examples.
DEFAULT_NAMES: dict[str, tuple[str, ...]] = {
    "server": ("SERVER", "BROKER", "MQTT_SERVER", "MQTT_BROKER", "BROKER_HOST", "MQTT_HOST",
               "BROKER_ADDRESS", "HOST"),
    "port": ("PORT", "MQTT_PORT", "BROKER_PORT"),
    "client_id": ("CLIENT_ID", "MQTT_CLIENT_ID"),
    "user": ("USERNAME", "USER", "MQTT_USER", "MQTT_USERNAME"),
    "password": ("PASSWORD", "MQTT_PASSWORD", "MQTT_PASS"),
    "topic": ("TOPIC", "MQTT_TOPIC", "PUB_TOPIC", "TOPIC_PUB"),
    "ca_file": ("CA_FILE", "CA_CERT", "CA_CERT_PATH", "CA_PATH", "CA"),
    "wifi_ssid": ("ssid", "SSID", "WIFI_SSID", "WIFI_NAME", "WLAN_SSID"),
    "wifi_password": ("password", "WIFI_PASSWORD", "WIFI_PASS", "WLAN_PASSWORD", "WIFI_KEY"),
    "keepalive": ("KEEPALIVE", "KEEP_ALIVE", "MQTT_KEEPALIVE"),
    "publish_interval": ("PUBLISH_INTERVAL", "INTERVAL", "DELAY", "SLEEP"),
    "tls": ("USE_TLS", "TLS", "USE_SSL", "SSL"),
    "sni": ("USE_SNI", "SNI"),
}
# Settings without which the harness cannot point the program at its broker and network.
REQUIRED = ("server", "port", "topic", "wifi_ssid", "wifi_password")
# umqtt.simple's MQTTClient(client_id, server, port, user, password, keepalive, ssl, ...).
MQTT_CLIENT_PARAMS = ("client_id", "server", "port", "user", "password", "keepalive", "tls")
CA_SUFFIXES = (".crt", ".pem", ".cer", ".der", ".ca")
_CONVERSIONS = ("int", "str", "float", "bytes")
NOT_LITERAL = object()  # a site whose value is an expression (e.g. the seed's CLIENT_ID)


@dataclass(frozen=True)
class Site:
    """Where one setting's value is written: the exact source span of the value."""

    file: str  # the device path, "/main.py"
    name: str  # the constant's name, or "" for a literal argument
    line: int
    start: int  # byte offsets into the file's UTF-8 text
    end: int
    value: Any  # the literal as written, or NOT_LITERAL

    @property
    def where(self) -> str:
        label = f"{self.name} in " if self.name else "a literal in "
        return f"{label}{self.file.lstrip('/')} line {self.line}"


@dataclass
class _Module:
    path: str
    text: bytes
    tree: ast.Module
    line_starts: list[int]
    assigns: dict[str, list[tuple[ast.expr, int]]] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # alias -> (mod, name)
    modules: dict[str, str] = field(default_factory=dict)  # alias -> module (import m as a)


class ProgramSource:
    """The program's Python files, parsed, with the site of each setting found."""

    def __init__(self, files: Mapping[str, bytes], names: Mapping[str, str] | None = None,
                 label: str = "the program") -> None:
        self.files = dict(files)
        self.label = label
        self.unparsed: dict[str, str] = {}  # path -> why CPython could not parse it
        self.modules: dict[str, _Module] = {}
        for path, text in sorted(self.files.items()):
            if path.endswith(".py"):
                self._parse(path, text)
        self.sites: dict[str, list[Site]] = {}
        self.evidence: dict[str, str] = {}  # what the code shows about tls / sni / interval
        self.facts: dict[str, Any] = {}
        self._find(dict(names or {}))

    # --- parsing ------------------------------------------------------------------
    def _parse(self, path: str, text: bytes) -> None:
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError) as exc:
            self.unparsed[path] = str(exc)
            return
        starts, offset = [], 0
        for line in text.splitlines(keepends=True):
            starts.append(offset)
            offset += len(line)
        starts.append(offset)
        module = _Module(path, text, tree, starts)
        for node in tree.body:
            for target, value in _assignments(node):
                module.assigns.setdefault(target, []).append((value, 0))
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = (node.module, alias.name)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.modules[alias.asname or alias.name] = alias.name
        self.modules[path] = module

    def _module_named(self, dotted: str) -> _Module | None:
        return self.modules.get("/" + dotted.replace(".", "/") + ".py")

    def _site(self, module: _Module, node: ast.expr, name: str) -> Site:
        assert node.end_lineno is not None and node.end_col_offset is not None
        start = module.line_starts[node.lineno - 1] + node.col_offset
        end = module.line_starts[node.end_lineno - 1] + node.end_col_offset
        value = node.value if isinstance(node, ast.Constant) else NOT_LITERAL
        return Site(module.path, name, node.lineno, start, end, value)

    # --- resolving an expression to the sites that carry its value ------------------
    def _resolve(self, module: _Module, expr: ast.expr,
                 function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> list[Site]:
        if isinstance(expr, ast.Constant) and not isinstance(expr.value, bool | type(None)):
            return [self._site(module, expr, "")]
        if isinstance(expr, ast.Name):
            return self._named(module, expr.id, function)
        if (isinstance(expr, ast.Call) and _callee(expr) in _CONVERSIONS and len(expr.args) == 1
                and not expr.keywords):
            return self._resolve(module, expr.args[0], function)  # int(PORT), str(TOPIC)
        if (isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name)
                and expr.value.id in module.modules):
            other = self._module_named(module.modules[expr.value.id])
            return self._named(other, expr.attr, None) if other else []
        return []

    def _named(self, module: _Module, name: str,
               function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> list[Site]:
        if function is not None:
            local = [value for node in ast.walk(function) for target, value in
                     _assignments(node) if target == name]
            if local:
                return [self._site(module, value, name) for value in local]
        if name in module.assigns:
            return [self._site(module, value, name) for value, _ in module.assigns[name]]
        if name in module.imports:
            source, original = module.imports[name]
            other = self._module_named(source)
            if other is not None:
                return self._named(other, original, None)
        return []

    def _by_name(self, name: str) -> list[Site]:
        """A constant by name: ``NAME`` in any file, or ``file.py:NAME`` in that one, at
        module level or inside a function (the guide's wifi.py keeps them local)."""
        file, _, bare = name.rpartition(":")
        found: list[Site] = []
        for module in self.modules.values():
            if file and module.path.lstrip("/") != file.lstrip("/"):
                continue
            for node in ast.walk(module.tree):
                for target, value in _assignments(node):
                    if target == bare:
                        found.append(self._site(module, value, bare))
        return found

    # --- finding every setting ------------------------------------------------------
    def _find(self, names: dict[str, str]) -> None:
        for key, name in names.items():
            sites = self._by_name(name)
            if not sites:
                raise ConfigError(
                    f"{self.label}: hil.toml maps {key} to {name!r}, but no assignment of "
                    f"{name.rpartition(':')[2]!r} is in "
                    f"{name.rpartition(':')[0] or 'any of its files'}")
            self.sites[key] = sites
        # Every site a usage reaches carries the setting (subscribe and publish may name
        # the topic separately): rewrite them all, unless the manifest said where it is.
        used: dict[str, list[Site]] = {}
        for key, sites in self._sites_from_usage():
            used.setdefault(key, []).extend(s for s in sites if s not in used[key])
        for key, sites in used.items():
            self.sites.setdefault(key, sites)
        for key, candidates in DEFAULT_NAMES.items():
            if key in self.sites:
                continue
            for name in candidates:
                sites = [s for s in self._by_name(name) if self._plausible(key, s)]
                if sites:
                    self.sites[key] = sites
                    break

    def _plausible(self, key: str, site: Site) -> bool:
        """A default-named constant only counts with a value of the setting's type (the
        wifi file's ``password`` is the Wi-Fi password, not the MQTT one)."""
        wifi_file = any(self._is_wifi_call(node) for node in
                        ast.walk(self.modules[site.file].tree))
        if key in ("password", "user") and site.name.islower() and wifi_file:
            return False
        if key in ("wifi_ssid", "wifi_password") and site.name.islower() and not wifi_file:
            return False
        if site.value is NOT_LITERAL:
            return key in ("client_id",)
        if key in ("port", "keepalive"):
            return isinstance(site.value, int) and not isinstance(site.value, bool)
        if key == "publish_interval":
            return isinstance(site.value, int | float) and not isinstance(site.value, bool)
        if key in ("tls", "sni"):
            return isinstance(site.value, bool)
        if key == "ca_file":
            return isinstance(site.value, str) and site.value.lower().endswith(CA_SUFFIXES)
        return isinstance(site.value, str)

    def _sites_from_usage(self) -> Iterator[tuple[str, list[Site]]]:
        for module in self.modules.values():
            for function, call in _calls(module.tree):
                yield from self._mqtt_client_sites(module, function, call)
                if self._is_wifi_call(call) and "network" in module.modules.values():
                    for key, arg in zip(("wifi_ssid", "wifi_password"), call.args, strict=False):
                        yield from _nonempty(key, self._resolve(module, arg, function))
                if _attribute(call) in ("subscribe", "publish") and call.args:
                    yield from _nonempty("topic", self._resolve(module, call.args[0], function))
                if isinstance(call.func, ast.Name) and call.func.id == "open" and call.args:
                    sites = [s for s in self._resolve(module, call.args[0], function)
                             if isinstance(s.value, str)
                             and s.value.lower().endswith(CA_SUFFIXES)]
                    yield from _nonempty("ca_file", sites)
                if _attribute(call) == "SSLContext" or _attribute(call) == "wrap_socket":
                    self._note("tls", True, f"{_attribute(call)}() in {module.path.lstrip('/')} "
                               f"line {call.lineno}")
                for keyword in call.keywords:
                    if keyword.arg == "server_hostname":
                        self._note("sni", True, f"server_hostname= in "
                                   f"{module.path.lstrip('/')} line {call.lineno}")
            for node in ast.walk(module.tree):
                if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                        and node.slice.value == "server_hostname"):
                    self._note("sni", True, f"ssl_params[\"server_hostname\"] in "
                               f"{module.path.lstrip('/')} line {node.lineno}")
                if isinstance(node, ast.Dict) and any(
                        isinstance(k, ast.Constant) and k.value == "server_hostname"
                        for k in node.keys):
                    self._note("sni", True, f"{{\"server_hostname\": ...}} in "
                               f"{module.path.lstrip('/')} line {node.lineno}")
                if isinstance(node, ast.While) and any(
                        _attribute(c) == "publish" for _, c in _calls(node)):
                    yield from self._loop_sleep(module, node)

    def _mqtt_client_sites(self, module: _Module, function: Any,
                           call: ast.Call) -> Iterator[tuple[str, list[Site]]]:
        if _callee(call) != "MQTTClient" and _callee(call) not in {
                alias for alias, (_, name) in module.imports.items() if name == "MQTTClient"}:
            return
        where = f"MQTTClient(...) in {module.path.lstrip('/')} line {call.lineno}"
        arguments = dict(zip(MQTT_CLIENT_PARAMS, call.args, strict=False))
        for keyword in call.keywords:
            key = {"ssl": "tls"}.get(keyword.arg or "", keyword.arg or "")
            if key in MQTT_CLIENT_PARAMS:
                arguments[key] = keyword.value
            if keyword.arg == "ssl_params":
                self._note("tls", True, f"ssl_params= to {where}")
        self.facts.setdefault("keepalive_argument", "keepalive" in arguments)
        for key, expr in arguments.items():
            if key == "tls":
                on = not (isinstance(expr, ast.Constant) and expr.value in (False, None, 0))
                sites = self._resolve(module, expr, function)
                if on and not sites:
                    self._note("tls", True, f"ssl= to {where}")
                yield from _nonempty("tls", [s for s in sites if isinstance(s.value, bool)])
                continue
            if key == "keepalive" and isinstance(expr, ast.Constant):
                self._note("keepalive", expr.value, f"keepalive={expr.value!r} to {where}")
                continue
            yield from _nonempty(key, self._resolve(module, expr, function))

    def _loop_sleep(self, module: _Module, loop: ast.While) -> Iterator[tuple[str, list[Site]]]:
        for node in ast.walk(loop):
            if not isinstance(node, ast.Call) or _callee(node) not in ("sleep", "sleep_ms"):
                continue
            if not node.args:
                continue
            if _callee(node) == "sleep_ms":
                self.facts["interval_unit_ms"] = True
            sites = self._resolve(module, node.args[0], None)
            numeric = [s for s in sites if isinstance(s.value, int | float)
                       and not isinstance(s.value, bool)]
            if numeric and numeric[0].name:
                yield "publish_interval", numeric
            elif numeric:
                scale = 1000.0 if _callee(node) == "sleep_ms" else 1.0
                self._note("publish_interval", numeric[0].value / scale,
                           f"{_callee(node)}({numeric[0].value!r}) in the publish loop, "
                           f"{module.path.lstrip('/')} line {node.lineno}")
            return

    def _note(self, key: str, value: Any, evidence: str) -> None:
        if key not in self.evidence:
            self.facts[key] = value
            self.evidence[key] = evidence

    def _is_wifi_call(self, node: ast.AST) -> bool:
        """``<wlan>.connect(ssid[, password])``: a connect() with arguments in a file that
        uses the network module (umqtt's client.connect() takes none)."""
        return (isinstance(node, ast.Call) and _attribute(node) == "connect"
                and 1 <= len(node.args) <= 2)

    # --- the result -------------------------------------------------------------------
    def missing(self, keys: tuple[str, ...] = REQUIRED) -> list[str]:
        return [key for key in keys if key not in self.sites]

    def require(self) -> None:
        """One line naming the first needed setting that was not found, and the fix."""
        for key in self.missing():
            names = ", ".join(DEFAULT_NAMES[key][:4])
            unparsed = "".join(f"; {path.lstrip('/')} could not be parsed ({why})"
                               for path, why in self.unparsed.items())
            raise ConfigError(
                f"{self.label}: cannot find its {key} (no constant named {names}, …, and no "
                f"call that passes one){unparsed}; name it in the program folder's hil.toml: "
                f"[constants] {key} = \"YOUR_CONSTANT\" (or \"file.py:name\")")

    def rewrite(self, values: Mapping[str, Any]) -> dict[str, bytes]:
        """Every file with a site in ``values`` (key -> new value), with only those spans
        replaced; keys whose value is None keep what the program wrote."""
        edits: dict[str, list[tuple[int, int, bytes]]] = {}
        for key, value in values.items():
            if value is None:
                continue
            for site in self.sites.get(key, []):
                edits.setdefault(site.file, []).append(
                    (site.start, site.end, _literal(value, site.value).encode()))
        files: dict[str, bytes] = {}
        for path, changes in edits.items():
            text = self.modules[path].text
            for start, end, new in sorted(set(changes), reverse=True):
                text = text[:start] + new + text[end:]
            files[path] = text
        return files

    def files_with_sites(self) -> set[str]:
        return {site.file for sites in self.sites.values() for site in sites}


def _assignments(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) for ``NAME = value``, ``A, B = x, y`` and ``NAME: T = value``."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, node.value
            elif (isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                  and len(target.elts) == len(node.value.elts)):
                for element, value in zip(target.elts, node.value.elts, strict=True):
                    if isinstance(element, ast.Name):
                        yield element.id, value
    elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
          and node.value is not None):
        yield node.target.id, node.value


def _calls(tree: ast.AST) -> Iterator[tuple[Any, ast.Call]]:
    """Every call with the function it is in (None at module level)."""
    def visit(node: ast.AST, function: Any) -> Iterator[tuple[Any, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) \
                else function
            if isinstance(child, ast.Call):
                yield function, child
            yield from visit(child, inner)
    yield from visit(tree, tree if isinstance(tree, ast.FunctionDef) else None)


def _callee(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else ""


def _attribute(node: ast.AST) -> str:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _nonempty(key: str, sites: list[Site]) -> Iterator[tuple[str, list[Site]]]:
    if sites:
        yield key, sites


def _literal(value: Any, written: Any) -> str:
    """Python source for ``value``, of the type the program wrote (a port written as a
    string stays a string, a topic written as bytes stays bytes)."""
    if isinstance(written, bytes) and isinstance(value, str):
        value = value.encode()
    elif isinstance(written, str) and not isinstance(value, str):
        value = str(value)
    elif isinstance(written, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return repr(value)

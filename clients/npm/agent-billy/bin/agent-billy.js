#!/usr/bin/env node
// `npx agent-billy …`: run the Python CLI that ships inside this package.
//
// On first use (per bundled wheel) this makes a private virtual environment in the user's cache
// folder and installs the CLI from the wheel file in this tarball: never by name from a package
// index, where another package could take the name. Its dependencies (the MCP SDK, httpx) do come
// from the configured index. Then it runs the CLI with the same arguments and the same
// stdin/stdout/stderr, so `npx agent-billy --mcp` is a stdio MCP server.
//
// Everything this launcher says goes to stderr: with --mcp, stdout belongs to the protocol.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REQUIRED = '3.11';
const packageDir = path.resolve(__dirname, '..');
const { version } = require(path.join(packageDir, 'package.json'));
const isWindows = process.platform === 'win32';

function say(message) {
  process.stderr.write(`agent-billy: ${message}\n`);
}

function quit(message, code = 1) {
  say(message);
  process.exit(code);
}

// --- Python 3.11 -----------------------------------------------------------------------------

function pythonVersion(command, args) {
  const probe = spawnSync(command, [...args, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return probe.status === 0 ? probe.stdout.trim() : null;
}

function findPython() {
  const chosen = process.env.AGENT_BILLY_PYTHON;
  if (chosen) {
    const found = pythonVersion(chosen, []);
    if (found === REQUIRED) return { command: chosen, args: [] };
    quit(`AGENT_BILLY_PYTHON=${chosen} is ${found ? `Python ${found}` : 'not a working Python'}; it must be Python ${REQUIRED}.`);
  }
  const candidates = isWindows
    ? [{ command: 'py', args: [`-${REQUIRED}`] }, { command: 'python', args: [] }]
    : [{ command: `python${REQUIRED}`, args: [] }, { command: 'python3', args: [] }];
  for (const candidate of candidates) {
    if (pythonVersion(candidate.command, candidate.args) === REQUIRED) return candidate;
  }
  const install = isWindows
    ? 'Install it from https://www.python.org/downloads/ (tick "Add python.exe to PATH")'
    : process.platform === 'darwin'
      ? 'Install it with `brew install python@3.11` or from https://www.python.org/downloads/'
      : 'Install it with your package manager (e.g. `sudo apt install python3.11 python3.11-venv`)';
  return quit(
    `agent-billy needs Python ${REQUIRED}, and neither python${REQUIRED} nor python3 on your PATH is Python ${REQUIRED}.\n` +
      `${install}, then run the same command again. Or set AGENT_BILLY_PYTHON to the path of a Python ${REQUIRED}.`,
  );
}

// --- the private environment -----------------------------------------------------------------

function cacheRoot() {
  if (process.env.AGENT_BILLY_CACHE_DIR) return process.env.AGENT_BILLY_CACHE_DIR;
  if (isWindows) return path.join(process.env.LOCALAPPDATA || path.join(os.homedir(), 'AppData', 'Local'), 'agent-billy', 'Cache');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'agent-billy');
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'agent-billy');
}

function bundledWheel() {
  const wheelDir = path.join(packageDir, 'wheels');
  const wheels = fs.existsSync(wheelDir) ? fs.readdirSync(wheelDir).filter((name) => name.endsWith('.whl')) : [];
  if (wheels.length !== 1) {
    quit(`this package is incomplete (expected the CLI's wheel in ${wheelDir}). Reinstall agent-billy.`);
  }
  return path.join(wheelDir, wheels[0]);
}

function venvPython(dir) {
  return path.join(dir, isWindows ? 'Scripts\\python.exe' : 'bin/python');
}

const MARKER = '.agent-billy-installed';

function runQuietly(command, args, what) {
  // The child's stdout goes to our stderr: with --mcp, stdout must carry only the protocol.
  const result = spawnSync(command, args, { stdio: ['ignore', 2, 2] });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `exit code ${result.status}`;
    throw new Error(`${what} failed (${why})`);
  }
}

function ensureEnvironment(python, wheel) {
  // One environment per bundled wheel: a new package version (or a rebuilt wheel) gets a fresh one.
  const digest = crypto.createHash('sha256').update(fs.readFileSync(wheel)).digest('hex').slice(0, 12);
  const root = cacheRoot();
  const target = path.join(root, `venv-${version}-${digest}`);
  if (fs.existsSync(path.join(target, MARKER))) return target;

  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  if (fs.existsSync(target)) fs.rmSync(target, { recursive: true, force: true }); // an unfinished install
  // Built under a temporary name and renamed when complete, so two first runs at once (an MCP
  // client may start the server twice) never use a half-installed environment. The CLI runs as
  // `python -m agent_billy`, which works from the renamed folder.
  const building = `${target}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  say(`first run of ${version}: installing the CLI from the bundled ${path.basename(wheel)} into ${target}`);
  try {
    runQuietly(python.command, [...python.args, '-m', 'venv', building], 'creating the virtual environment');
    runQuietly(
      venvPython(building),
      ['-I', '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', wheel],
      'installing the CLI (pip)',
    );
    fs.writeFileSync(path.join(building, MARKER), `${path.basename(wheel)}\n`);
    try {
      fs.renameSync(building, target);
    } catch (error) {
      if (!fs.existsSync(path.join(target, MARKER))) throw error;
      fs.rmSync(building, { recursive: true, force: true }); // another first run finished first
    }
  } catch (error) {
    fs.rmSync(building, { recursive: true, force: true });
    const hint = /venv/.test(error.message) && !isWindows
      ? ' On Debian and Ubuntu, install python3.11-venv.'
      : ' Check your network access to the Python package index, then run the same command again.';
    quit(`${error.message}.${hint}`);
  }
  say('installed.');
  return target;
}

// --- run -------------------------------------------------------------------------------------

function main() {
  const python = findPython();
  const environment = ensureEnvironment(python, bundledWheel());
  // -I: ignore PYTHONPATH, the user's site-packages and the current folder, so nothing on this
  // machine can stand in for the CLI or its dependencies.
  const child = spawn(venvPython(environment), ['-I', '-m', 'agent_billy', ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // Ctrl-C reaches the CLI directly from the terminal; a client stopping us (SIGTERM/SIGHUP) is
  // passed on, so the CLI never outlives its launcher.
  process.on('SIGINT', () => {});
  for (const signal of ['SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('error', (error) => quit(`could not start the CLI: ${error.message}`));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code === null ? 1 : code);
    }
  });
}

main();

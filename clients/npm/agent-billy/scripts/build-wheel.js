#!/usr/bin/env node
// `npm pack` / `npm publish` run this first (prepack): build the Python CLI's wheel from
// clients/agent_billy into wheels/, so the tarball carries the exact CLI it launches and the
// launcher never asks a package index for it by name.
//
// The build runs on a copy of the source (the checkout stays free of build/ and egg-info
// leftovers) with `pip wheel --no-deps`. Python: $AGENT_BILLY_BUILD_PYTHON, else the repository's
// .venv (it has setuptools and wheel, so no build isolation and no download is needed), else
// python3.11 / python3 (with pip's build isolation, which fetches setuptools).
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '..');
const sourceDir = path.resolve(packageDir, '..', '..', 'agent_billy');
const wheelDir = path.join(packageDir, 'wheels');
const { version } = require(path.join(packageDir, 'package.json'));

function fail(message) {
  process.stderr.write(`build-wheel: ${message}\n`);
  process.exit(1);
}

function run(command, args) {
  return spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
}

function canImport(python, modules) {
  const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' });
  return probe.status === 0;
}

function buildPython() {
  const venv = path.resolve(packageDir, '..', '..', '..', '.venv', process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
  const candidates = [process.env.AGENT_BILLY_BUILD_PYTHON, fs.existsSync(venv) ? venv : null, 'python3.11', 'python3', 'python'];
  for (const candidate of candidates) {
    if (candidate && canImport(candidate, ['pip'])) return candidate;
  }
  return fail('no Python with pip found: set AGENT_BILLY_BUILD_PYTHON to one (3.11).');
}

if (!fs.existsSync(path.join(sourceDir, 'pyproject.toml'))) {
  fail(`the CLI's source is not at ${sourceDir}: pack from the repository checkout.`);
}

const python = buildPython();
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-billy-wheel-'));
try {
  const copyDir = path.join(workDir, 'agent_billy');
  const skip = new Set(['build', 'dist', '__pycache__']);
  fs.cpSync(sourceDir, copyDir, {
    recursive: true,
    filter: (src) => !skip.has(path.basename(src)) && !src.endsWith('.egg-info'),
  });
  fs.rmSync(wheelDir, { recursive: true, force: true });
  fs.mkdirSync(wheelDir, { recursive: true });

  const isolation = canImport(python, ['setuptools', 'wheel']) ? ['--no-build-isolation'] : [];
  const args = ['-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--no-deps', ...isolation,
    '--wheel-dir', wheelDir, copyDir];
  const built = run(python, args);
  if (built.status !== 0) fail(`pip wheel failed (exit ${built.status}) with ${python}.`);
} finally {
  fs.rmSync(workDir, { recursive: true, force: true });
}

const wheels = fs.readdirSync(wheelDir).filter((name) => name.endsWith('.whl'));
if (wheels.length !== 1) fail(`expected one wheel in ${wheelDir}, found: ${wheels.join(', ') || 'none'}.`);
const wheelVersion = wheels[0].split('-')[1];
if (wheelVersion !== version) {
  fail(`the CLI's version is ${wheelVersion} but package.json says ${version}: make them the same.`);
}
process.stderr.write(`build-wheel: bundled ${wheels[0]} (built with ${python})\n`);

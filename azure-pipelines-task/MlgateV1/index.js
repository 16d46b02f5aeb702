'use strict';
// Mlgate@1: run the mlgate CLI with the task's inputs passed as explicit arguments.
//
// The agent hands inputs to a task as INPUT_* variables and task-lib removes them from the
// environment, so nothing reaches Python implicitly: every input becomes an argument here. The
// CLI also reads MLGATE_<OPTION> defaults from its environment, and every pipeline variable is
// in the agent's environment, so childEnv() drops all MLGATE_* variables before Python starts.
// String values are passed as `--flag=value`, so a value starting with `-` is never taken for an
// option. Secrets (the job's access token) go through the child's environment, never argv.
const fs = require('fs');
const path = require('path');
const tl = require('azure-pipelines-task-lib/task');

// The mlgate wheel and its hashed locks, bundled into the task by bundle.py when the .vsix is made.
const BUNDLE = path.join(__dirname, 'mlgate');
const MIN_PYTHON = [3, 10];
// Inputs of type filePath: the agent fills an empty one with the sources directory, so they count
// only when the pipeline supplied them (tl.filePathSupplied).
const PATH_INPUTS = new Set(['directory', 'output', 'manifest', 'artifacts', 'policy', 'evidenceDir',
  'evidence', 'file', 'pythonPath', 'wheelhouse']);
// Output variables mlgate sets under its CLI names -> the task's names (one casing: camelCase).
const CLI_OUTPUTS = { manifest_sha256: 'manifestSha256', evidence_sha256: 'evidenceSha256',
  ledger_head: 'ledgerHead', approver: 'approver', gate_passed: 'gatePassed' };

// command -> its positional inputs, in order ('?' marks an optional one).
const COMMANDS = {
  seal: ['directory?'],
  verify: ['directory'],
  lineage: ['ref'],
  gate: ['ref'],
  secrets: [],
  record: ['ref'],
  rollback: ['modelName'],
  'audit-show': ['ref'],
  'audit-verify': [],
  'audit-export': [],
};

// One line per CLI option: [task input, mlgate option, 'string' | 'path' | 'bool' | 'lines', commands it
// applies to]. 'lines': one option per non-empty line, on the commands of REPEATABLE (one line elsewhere).
const OPTIONS = [
  ['output', '--output', 'path', ['seal', 'audit-export']],
  ['manifest', '--manifest', 'path', ['verify']],
  ['model', '--model', 'string', ['seal', 'verify']],
  ['force', '--force', 'bool', ['seal']],
  ['followInternalSymlinks', '--follow-internal-symlinks', 'bool', ['seal', 'verify']],
  ['serialization', '--serialization', 'string', ['seal']],
  ['shardSize', '--shard-size', 'string', ['seal']],
  ['sign', '--sign', 'string', ['seal', 'gate']],
  ['publicKey', '--public-key', 'lines', ['verify', 'gate', 'audit-show', 'audit-verify', 'audit-export']],
  ['signature', '--signature', 'string', ['seal', 'verify']],
  ['artifacts', '--artifacts', 'path', ['gate']],
  ['policy', '--policy', 'path', ['gate', 'record']],
  ['evidenceDir', '--evidence-dir', 'path', ['gate']],
  ['stage', '--stage', 'string', ['gate', 'record', 'rollback']],
  ['setAlias', '--set-alias', 'string', ['gate']],
  ['gatedAlias', '--gated-alias', 'string', ['verify']],
  ['vault', '--vault', 'string', ['secrets']],
  ['secrets', '--secrets', 'string', ['secrets']],
  ['to', '--to', 'string', ['secrets']],
  ['allowPartial', '--allow-partial', 'bool', ['secrets']],
  ['concurrency', '--concurrency', 'string', ['secrets']],
  ['evidence', '--evidence', 'path', ['record']],
  ['approvalStage', '--approval-stage', 'string', ['record', 'rollback']],
  ['ledger', '--ledger', 'string', ['seal', 'gate', 'record', 'rollback', 'audit-show', 'audit-verify', 'audit-export']],
  ['json', '--json', 'bool', ['lineage', 'audit-show']],
  ['file', '--file', 'path', ['audit-verify']],
  ['noAnchors', '--no-anchors', 'bool', ['audit-verify', 'audit-export']],
  ['requireAnchors', '--require-anchors', 'bool', ['audit-verify', 'audit-export']],
  ['ledgerKey', '--ledger-key', 'string', ['seal', 'gate', 'record', 'rollback']],
  ['evidenceKey', '--evidence-key', 'string', ['record']],
  ['evidenceSignature', '--evidence-signature', 'string', ['record']],
  ['unsignedUntil', '--unsigned-until', 'string', ['audit-show', 'audit-verify', 'audit-export']],
];

// 'lines' inputs -> the commands whose option repeats (gate trusts any of several keys).
const REPEATABLE = { publicKey: ['gate'] };
// pickList inputs the shim passes on: the agent does not check a YAML value against the options.
const CHOICES = { serialization: ['files', 'shards'], to: ['env', 'output'] };
// The inputs that name a key: an azure-keyvault:// one is used with the service connection and needs the
// Azure SDKs (the azure lock).
const KEY_INPUTS = ['sign', 'publicKey', 'ledgerKey', 'evidenceKey'];

// mlgate's exit codes (its CLI contract) -> task result.
const RESULTS = {
  0: { result: tl.TaskResult.Succeeded, name: 'passed', message: 'mlgate passed' },
  1: { result: tl.TaskResult.Failed, name: 'refused', message: 'mlgate refused the release (exit 1); see the log above for why' },
  2: { result: tl.TaskResult.Failed, name: 'configuration-error', message: 'mlgate configuration error (exit 2): fix the inputs or files named in the log above' },
  3: { result: tl.TaskResult.Failed, name: 'could-not-evaluate', message: 'mlgate could not evaluate (exit 3): a service, network or file failure; nothing was passed' },
};

class ConfigError extends Error {}

// An input's value ('' when absent); a filePath input only when the pipeline supplied it.
function input(name) {
  if (PATH_INPUTS.has(name) && !tl.filePathSupplied(name)) return '';
  return (tl.getInput(name, false) || '').trim();
}

function commandInput() {
  const command = (tl.getInput('command', false) || '').trim();
  if (!Object.prototype.hasOwnProperty.call(COMMANDS, command)) {
    throw new ConfigError(`input 'command' is '${command}'; use one of: ${Object.keys(COMMANDS).join(', ')}`);
  }
  return command;
}

function positionals(command) {
  const args = [];
  for (const spec of COMMANDS[command]) {
    const name = spec.replace('?', '');
    const value = input(name);
    if (!value) {
      if (!spec.endsWith('?')) throw new ConfigError(`mlgate ${command.replace('-', ' ')} needs the input '${name}'`);
      continue;
    }
    if (value.startsWith('-')) throw new ConfigError(`input '${name}' must not start with '-': '${value}'`);
    args.push(value);
  }
  return args;
}

function options(command) {
  const args = [];
  for (const [name, flag, kind, commands] of OPTIONS) {
    if (!commands.includes(command)) continue;
    if (kind === 'bool') {
      if (tl.getBoolInput(name, false)) args.push(flag);
      continue;
    }
    const value = input(name);
    if (!value) continue;
    if (CHOICES[name] && !CHOICES[name].includes(value)) {
      throw new ConfigError(`input '${name}' is '${value}'; use ${CHOICES[name].join(' or ')}`);
    }
    if (kind === 'lines') {
      const lines = value.split(/\r?\n/).map((line) => line.trim()).filter((line) => line);
      if (lines.length > 1 && !(REPEATABLE[name] || []).includes(command)) {
        throw new ConfigError(`input '${name}' has ${lines.length} lines; mlgate ${command.replace('-', ' ')} ` +
          `takes one (several, one per line, only for: ${(REPEATABLE[name] || []).join(', ')})`);
      }
      for (const line of lines) args.push(`${flag}=${line}`);
      continue;
    }
    args.push(`${flag}=${value}`);
  }
  const verbose = parseInt(tl.getInput('verbose', false) || '0', 10);
  if (verbose > 0) args.push('-' + 'v'.repeat(Math.min(verbose, 2)));
  return args;
}

// Commands that use the connection besides secrets: a blob ledger and an azure-keyvault:// key
// (--sign, --public-key, --ledger-key, --evidence-key) are reached with the same workload identity,
// handed over as mlgate's MLGATE_IDENTITY family (the default of each command's --identity, --tenant-id,
// --client-id and --service-connection-id, and what its blob ledger and stores read).
const CONNECTION_COMMANDS = ['seal', 'verify', 'gate', 'record', 'rollback', 'audit-show', 'audit-verify', 'audit-export'];

// An Azure Resource Manager connection: workload identity federation of the pipeline, for `secrets`
// (as options) and for the ledger and Key Vault keys of the other commands (as MLGATE_IDENTITY & co. in the
// child's env).
function workloadIdentity(command) {
  const connection = (tl.getInput('azureSubscription', false) || '').trim();
  const forLedger = CONNECTION_COMMANDS.includes(command);
  if ((command !== 'secrets' && !forLedger) || !connection) return { args: [], env: {} };
  const scheme = tl.getEndpointAuthorizationScheme(connection, true) || '';
  if (scheme.toLowerCase() !== 'workloadidentityfederation') {
    throw new ConfigError(`service connection '${connection}' uses the '${scheme || 'unknown'}' scheme; ` +
      `mlgate ${command.replace('-', ' ')} needs an Azure Resource Manager connection with workload identity federation`);
  }
  const tenantId = tl.getEndpointAuthorizationParameter(connection, 'tenantid', true) || '';
  const clientId = tl.getEndpointAuthorizationParameter(connection, 'serviceprincipalid', true) || '';
  if (!tenantId || !clientId) {
    throw new ConfigError(`service connection '${connection}' has no tenant id or service principal id`);
  }
  const token = tl.getEndpointAuthorizationParameter('SystemVssConnection', 'AccessToken', true) ||
    tl.getVariable('System.AccessToken') || '';
  if (!token) {
    throw new ConfigError("the job's access token is not available; the job needs it to exchange the " +
      'service connection for an Azure token');
  }
  tl.setSecret(token);
  if (forLedger) {
    return {
      args: [],
      env: { SYSTEM_ACCESSTOKEN: token, MLGATE_IDENTITY: 'azure-pipelines', MLGATE_TENANT_ID: tenantId,
        MLGATE_CLIENT_ID: clientId, MLGATE_SERVICE_CONNECTION_ID: connection },
    };
  }
  return {
    args: ['--identity=azure-pipelines', `--tenant-id=${tenantId}`, `--client-id=${clientId}`,
      `--service-connection-id=${connection}`],
    env: { SYSTEM_ACCESSTOKEN: token },
  };
}

function basePython() {
  const configured = input('pythonPath');
  if (configured) return configured;
  const found = tl.which('python3', false) || tl.which('python', false);
  if (!found) {
    throw new ConfigError('no python3 or python on PATH: add a UsePythonVersion@0 step (versionSpec 3.12) before ' +
      "this task, or set the input 'pythonPath'");
  }
  return found;
}

// The agent's Python must be MIN_PYTHON or newer; say which one was found and what to do.
function checkPythonVersion(python) {
  const probe = tl.tool(python).arg(['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])']).execSync();
  const found = String((probe && probe.stdout) || '').trim();
  const match = /^(\d+)\.(\d+)\.\d+$/.exec(found);
  if (!probe || probe.code !== 0 || !match) {
    throw new ConfigError(`could not run ${python} to read its version` + (probe && probe.stderr ? `: ${String(probe.stderr).trim()}` : '') +
      "; set the input 'pythonPath' to a Python 3.10+ interpreter or add a UsePythonVersion@0 step");
  }
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new ConfigError(`the agent's Python ${python} is ${found}; mlgate needs Python ${MIN_PYTHON.join('.')} ` +
      "or newer: add a UsePythonVersion@0 step (versionSpec 3.12) before this task, or set the input 'pythonPath'");
  }
  return found;
}

// Which lock the command needs: seal and verify of local files need no SDK, a Key Vault key needs the
// Azure SDKs (mirrors action/setup_venv.py).
function profile(command) {
  const chosen = input('extras') || 'auto';
  const vault = KEY_INPUTS.filter((name) => input(name).split(/\r?\n/)
    .some((line) => line.trim().toLowerCase().startsWith('azure-keyvault://')));
  if (chosen !== 'auto') {
    if (vault.length && (chosen === 'core' || chosen === 's3')) {
      throw new ConfigError(`input '${vault[0]}' names a Key Vault key (azure-keyvault://...), which needs the ` +
        `Azure SDKs, and input 'extras' is '${chosen}': set 'extras' to auto, azure or all`);
    }
    return chosen;
  }
  if (vault.length) return 'azure';
  const remoteLedger = input('ledger').toLowerCase().startsWith('https:');
  if ((command === 'seal' || command === 'verify') && !input('model') && !remoteLedger) return 'core';
  if (command === 'audit-verify' && input('file') && tl.getBoolInput('noAnchors', false)) return 'core';
  return 'azure';
}

function readBundle() {
  let bundle;
  try {
    bundle = JSON.parse(fs.readFileSync(path.join(BUNDLE, 'bundle.json'), 'utf8'));
  } catch (err) {
    throw new ConfigError(`this task carries no mlgate wheel (${err.message}); build the extension with ` +
      "`python azure-pipelines-task/bundle.py` before `npx tfx-cli extension create`, or set 'install' to preinstalled");
  }
  return bundle;
}

function venvPython(venv) {
  return process.platform === 'win32' ? path.join(venv, 'Scripts', 'python.exe') : path.join(venv, 'bin', 'python');
}

// A new environment in a fresh private directory: the bundled wheel and the command's locked
// dependencies, every file checked against the hashes (pip --require-hashes). No index is needed
// with a wheelhouse; without one, pip uses the agent's configured index (PIP_INDEX_URL, pip.conf).
async function installBundled(python, command) {
  const bundle = readBundle();
  const name = profile(command);
  const lock = bundle.locks && bundle.locks[name];
  if (!lock) throw new ConfigError(`input 'extras' is '${name}'; use auto, ${Object.keys(bundle.locks || {}).join(', ')}`);
  checkPythonVersion(python);
  const temp = tl.getVariable('Agent.TempDirectory') || require('os').tmpdir();
  const home = fs.mkdtempSync(path.join(temp, 'mlgate-'));
  const venv = path.join(home, 'venv');
  const requirement = path.join(home, 'mlgate-wheel.txt');
  fs.writeFileSync(requirement, `${path.join(BUNDLE, bundle.wheel)} --hash=sha256:${bundle.sha256}\n`);
  console.log(`mlgate ${bundle.version}: installing the bundled wheel and locks/${name}.txt into ${venv}`);
  await run(python, ['-m', 'venv', venv], 'creating the virtual environment');
  const args = ['-m', 'pip', 'install', '--require-hashes', '--no-input', '--disable-pip-version-check',
    '--quiet', '-r', path.join(BUNDLE, lock), '-r', requirement];
  const wheelhouse = input('wheelhouse');
  if (wheelhouse) args.push('--no-index', `--find-links=${wheelhouse}`);
  await run(venvPython(venv), args, 'installing mlgate with --require-hashes');
  return venvPython(venv);
}

async function run(tool, args, what) {
  const code = await tl.tool(tool).arg(args).exec({ ignoreReturnCode: true });
  if (code !== 0) throw new InstallError(`${what} failed (exit ${code}); see the log above`);
}

class InstallError extends Error {}

async function interpreterFor(command) {
  const python = basePython();
  const mode = input('install') || 'bundled';
  if (mode === 'preinstalled') return python;
  if (mode !== 'bundled') throw new ConfigError(`input 'install' is '${mode}'; use bundled or preinstalled`);
  return installBundled(python, command);
}

// gate: its decision is the exit code's meaning; the evidence path when the gate wrote the file.
function gateOutputs(command, code) {
  if (command !== 'gate' || (code !== 0 && code !== 1)) return;
  tl.setVariable('decision', RESULTS[code].name, false, true);
  const dir = input('evidenceDir');
  if (dir) {
    const evidence = path.resolve(dir, 'evidence.json');
    if (tl.exist(evidence)) tl.setVariable('evidencePath', evidence, false, true);
  }
}

function finish(code, message) {
  const outcome = RESULTS[code] || {
    result: tl.TaskResult.Failed,
    name: 'could-not-evaluate',
    message: `mlgate ended with unexpected exit code ${code}; nothing was passed`,
  };
  tl.setVariable('exitCode', String(code), false, true);
  tl.setVariable('result', outcome.name, false, true);
  tl.setResult(outcome.result, message || outcome.message);
}

// The child's environment: the agent's, without any MLGATE_* variable (a pipeline variable named
// MLGATE_NO_ANCHORS would otherwise silently become an option default), plus `extra`.
function childEnv(base, extra) {
  const env = {};
  for (const [name, value] of Object.entries(base)) {
    if (!name.toUpperCase().startsWith('MLGATE_')) env[name] = value;
  }
  return Object.assign(env, extra);
}

// Re-set the CLI's own output variables (manifest_sha256, ...) under the task's camelCase names.
function outputRelay(seen) {
  const re = /^##vso\[task\.setvariable variable=([a-z_0-9]+);[^\]]*isOutput=true[^\]]*\](.*)$/;
  return (line) => {
    const m = re.exec(line);
    if (m && Object.prototype.hasOwnProperty.call(CLI_OUTPUTS, m[1]) && !line.includes('issecret=true')) seen[m[1]] = m[2];
  };
}

async function main() {
  let argv;
  let env;
  let command;
  try {
    command = commandInput();
    const identity = workloadIdentity(command);
    argv = ['-m', 'mlgate', ...command.split('-'), ...positionals(command), ...options(command), ...identity.args];
    env = childEnv(process.env, identity.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      finish(2, `mlgate configuration error: ${err.message}`);
      return;
    }
    throw err;
  }
  let interpreter;
  try {
    interpreter = await interpreterFor(command);
  } catch (err) {
    if (err instanceof ConfigError) finish(2, `mlgate configuration error: ${err.message}`);
    else finish(3, `mlgate could not be installed: ${err.message}; nothing was passed`);
    return;
  }
  let code;
  const seen = {};
  try {
    const tool = tl.tool(interpreter).arg(argv);
    tool.on('stdline', outputRelay(seen));
    code = await tool.exec({ env, ignoreReturnCode: true });
  } catch (err) {
    finish(3, `mlgate could not be started with ${interpreter}: ${err.message}`);
    return;
  }
  for (const [cli, name] of Object.entries(CLI_OUTPUTS)) {
    if (Object.prototype.hasOwnProperty.call(seen, cli) && cli !== name) tl.setVariable(name, seen[cli], false, true);
  }
  gateOutputs(command, code);
  finish(code);
}

main().catch((err) => finish(3, `mlgate task failed unexpectedly: ${err && err.message}`));

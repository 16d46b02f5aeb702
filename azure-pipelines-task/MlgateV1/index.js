'use strict';
// Mlgate@1: run the mlgate CLI with the task's inputs passed as explicit arguments.
//
// The agent hands inputs to a task as INPUT_* variables and task-lib removes them from the
// environment, so nothing reaches Python implicitly: every input becomes an argument here. The
// CLI also reads MLGATE_<OPTION> defaults from its environment, and every pipeline variable is
// in the agent's environment, so childEnv() drops all MLGATE_* variables before Python starts.
// String values are passed as `--flag=value`, so a value starting with `-` is never taken for an
// option. Secrets (the job's access token) go through the child's environment, never argv.
const path = require('path');
const tl = require('azure-pipelines-task-lib/task');

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

// One line per CLI option: [task input, mlgate option, 'string' | 'bool', commands it applies to].
const OPTIONS = [
  ['output', '--output', 'string', ['seal', 'audit-export']],
  ['manifest', '--manifest', 'string', ['verify']],
  ['model', '--model', 'string', ['seal', 'verify']],
  ['force', '--force', 'bool', ['seal']],
  ['followInternalSymlinks', '--follow-internal-symlinks', 'bool', ['seal', 'verify']],
  ['artifacts', '--artifacts', 'string', ['gate']],
  ['policy', '--policy', 'string', ['gate', 'record']],
  ['evidenceDir', '--evidence-dir', 'string', ['gate']],
  ['stage', '--stage', 'string', ['gate', 'record', 'rollback']],
  ['vault', '--vault', 'string', ['secrets']],
  ['secrets', '--secrets', 'string', ['secrets']],
  ['to', '--to', 'string', ['secrets']],
  ['allowPartial', '--allow-partial', 'bool', ['secrets']],
  ['concurrency', '--concurrency', 'string', ['secrets']],
  ['evidence', '--evidence', 'string', ['record']],
  ['approvalStage', '--approval-stage', 'string', ['record', 'rollback']],
  ['ledger', '--ledger', 'string', ['seal', 'gate', 'record', 'rollback', 'audit-show', 'audit-verify', 'audit-export']],
  ['json', '--json', 'bool', ['lineage', 'audit-show']],
  ['file', '--file', 'string', ['audit-verify']],
  ['noAnchors', '--no-anchors', 'bool', ['audit-verify', 'audit-export']],
  ['requireAnchors', '--require-anchors', 'bool', ['audit-verify', 'audit-export']],
  ['ledgerKey', '--ledger-key', 'string', ['gate', 'record', 'rollback']],
  ['evidenceKey', '--evidence-key', 'string', ['record']],
  ['evidenceSignature', '--evidence-signature', 'string', ['record']],
  ['unsignedUntil', '--unsigned-until', 'string', ['audit-show', 'audit-verify', 'audit-export']],
];

// mlgate's exit codes (its CLI contract) -> task result.
const RESULTS = {
  0: { result: tl.TaskResult.Succeeded, name: 'passed', message: 'mlgate passed' },
  1: { result: tl.TaskResult.Failed, name: 'refused', message: 'mlgate refused the release (exit 1); see the log above for why' },
  2: { result: tl.TaskResult.Failed, name: 'configuration-error', message: 'mlgate configuration error (exit 2): fix the inputs or files named in the log above' },
  3: { result: tl.TaskResult.Failed, name: 'could-not-evaluate', message: 'mlgate could not evaluate (exit 3): a service, network or file failure; nothing was passed' },
};

class ConfigError extends Error {}

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
    const value = (tl.getInput(name, false) || '').trim();
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
  for (const [input, flag, kind, commands] of OPTIONS) {
    if (!commands.includes(command)) continue;
    if (kind === 'bool') {
      if (tl.getBoolInput(input, false)) args.push(flag);
      continue;
    }
    const value = (tl.getInput(input, false) || '').trim();
    if (value) args.push(`${flag}=${value}`);
  }
  const verbose = parseInt(tl.getInput('verbose', false) || '0', 10);
  if (verbose > 0) args.push('-' + 'v'.repeat(Math.min(verbose, 2)));
  return args;
}

// secrets with an Azure Resource Manager connection: workload identity federation of the pipeline.
function workloadIdentity(command) {
  const connection = (tl.getInput('azureSubscription', false) || '').trim();
  if (command !== 'secrets' || !connection) return { args: [], env: {} };
  const scheme = tl.getEndpointAuthorizationScheme(connection, true) || '';
  if (scheme.toLowerCase() !== 'workloadidentityfederation') {
    throw new ConfigError(`service connection '${connection}' uses the '${scheme || 'unknown'}' scheme; ` +
      'mlgate secrets needs an Azure Resource Manager connection with workload identity federation');
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
  return {
    args: ['--identity=azure-pipelines', `--tenant-id=${tenantId}`, `--client-id=${clientId}`,
      `--service-connection-id=${connection}`],
    env: { SYSTEM_ACCESSTOKEN: token },
  };
}

function python() {
  const configured = (tl.getInput('pythonPath', false) || '').trim();
  if (configured) return configured;
  const found = tl.which('python3', false) || tl.which('python', false);
  if (!found) {
    throw new ConfigError('no python3 or python on PATH: add a UsePythonVersion step and `pip install mlgate`, ' +
      "or set the input 'pythonPath'");
  }
  return found;
}

// gate: its decision is the exit code's meaning; the evidence path when the gate wrote the file.
function gateOutputs(command, code) {
  if (command !== 'gate' || (code !== 0 && code !== 1)) return;
  tl.setVariable('decision', RESULTS[code].name, false, true);
  const dir = (tl.getInput('evidenceDir', false) || '').trim();
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

async function run() {
  let argv;
  let env;
  let interpreter;
  try {
    const command = commandInput();
    const identity = workloadIdentity(command);
    argv = ['-m', 'mlgate', ...command.split('-'), ...positionals(command), ...options(command), ...identity.args];
    env = childEnv(process.env, identity.env);
    interpreter = python();
  } catch (err) {
    if (err instanceof ConfigError) {
      finish(2, `mlgate configuration error: ${err.message}`);
      return;
    }
    throw err;
  }
  let code;
  const command = argv[2] === 'audit' ? `audit-${argv[3]}` : argv[2];
  try {
    code = await tl.tool(interpreter).arg(argv).exec({ env, ignoreReturnCode: true });
  } catch (err) {
    finish(3, `mlgate could not be started with ${interpreter}: ${err.message}`);
    return;
  }
  gateOutputs(command, code);
  finish(code);
}

run().catch((err) => finish(3, `mlgate task failed unexpectedly: ${err && err.message}`));

'use strict';
// One mocked run of the Mlgate@1 task, described by the JSON in MLGATE_TEST_SCENARIO:
// { inputs: {name: value}, endpoints: {id: {scheme, params: {key: value}}}, answers: {...},
//   env: {NAME: value} (extra agent variables), recordEnv: true (log the child's MLGATE_* names) }.
const path = require('path');
const taskDir = path.join(__dirname, '..', 'MlgateV1');
const mr = require(path.join(taskDir, 'node_modules', 'azure-pipelines-task-lib', 'mock-run'));

const scenario = JSON.parse(process.env.MLGATE_TEST_SCENARIO);
// task-lib keeps its vault key in the agent's temp directory (else the current one): a scratch dir.
process.env.AGENT_TEMPDIRECTORY = process.env.MLGATE_TEST_TEMP;
for (const [id, endpoint] of Object.entries(scenario.endpoints || {})) {
  process.env[`ENDPOINT_AUTH_SCHEME_${id}`] = endpoint.scheme;
  for (const [key, value] of Object.entries(endpoint.params || {})) {
    process.env[`ENDPOINT_AUTH_PARAMETER_${id}_${key.toUpperCase()}`] = value;
  }
}
Object.assign(process.env, scenario.env || {});
const tmr = new mr.TaskMockRunner(path.join(taskDir, 'index.js'));
// The existing mlgate of the interpreter unless a scenario tests the bundled install.
for (const [name, value] of Object.entries({ install: 'preinstalled', ...(scenario.inputs || {}) })) {
  tmr.setInput(name, value);
}
if (scenario.fixedHome) {
  // The shim makes its environment in fs.mkdtempSync(<agent temp>/mlgate-XXXXXX): a fixed name here,
  // so the answers can name the commands it runs.
  const fs = require('fs');
  fs.mkdtempSync = (prefix) => {
    const dir = prefix + 'fixed';
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };
}
tmr.setAnswers(scenario.answers || {});
if (scenario.recordEnv) {
  // Log the names of the MLGATE_* variables the shim hands to the tool it runs. (mock-task is
  // loaded after setInput: task-lib reads the INPUT_* variables when it is first loaded.)
  const tlm = require(path.join(taskDir, 'node_modules', 'azure-pipelines-task-lib', 'mock-task'));
  const tool = tlm.tool;
  tlm.tool = (toolPath) => {
    const runner = tool(toolPath);
    const exec = runner.exec.bind(runner);
    runner.exec = (options) => {
      const names = Object.keys((options && options.env) || process.env);
      console.log('MLGATE_TEST_CHILD_ENV ' + JSON.stringify({
        mlgate: names.filter((n) => n.toUpperCase().startsWith('MLGATE_')).sort(),
        path: names.includes('PATH'),
      }));
      return exec(options);
    };
    return runner;
  };
}
tmr.run();

// The contract with the operator's routes, from the fixture the Go side reads too
// (webhookserver/contract_test.go sends exactly these requests to the real routes).
import contract from '../../contract/operator-routes.json';
import { readConfig } from '../config';
import { checkUrl, conferenceCallbackUrl, CONFERENCE_CALLBACK_EVENTS } from '../routes';
import { taskRole } from '../recovery/taskRoles';
import { start } from '../start';
import { ConfigNoticeId } from '../configNotices';
import {
  ACCOUNT,
  AGENT_CALL,
  CONFERENCE,
  fakeFlex,
  installResolved,
  jsonResponse,
  recordingLogger,
  validCustomData,
  validSettings,
  voiceTask,
  WORKFLOW_PROTECTED,
} from '../testing/fakeFlex';

const fill = (template: string, values: Record<string, string>): string =>
  template.replace(/{(\w+)}/g, (_, k) => {
    if (!(k in values)) throw new Error(`no value for {${k}}`);
    return values[k];
  });

const routePath = (route: string): { method: string; path: string } => {
  const [method, path] = route.split(' ');
  return { method, path };
};

describe('contract with the operator routes', () => {
  it.each(contract.conferenceCallback.examples)('builds the callback URL of $publicUrl exactly', (ex) => {
    const r = readConfig({
      flexOperator: {
        publicUrl: ex.publicUrl,
        namespace: ex.namespace,
        recovery: { policies: [{ name: ex.policy, workflowSids: [voiceTask().workflowSid] }] },
      },
    });
    if (r.kind !== 'ok') throw new Error(JSON.stringify(r));
    const url = conferenceCallbackUrl(r.config.recovery!.policies[0]);
    expect(url).toBe(ex.url);
    // The URL is the route's path on the public URL.
    const { path } = routePath(contract.conferenceCallback.route);
    expect(url).toBe(`${ex.publicUrl.replace(/\/$/, '')}${fill(path, { namespace: ex.namespace, policy: ex.policy })}`);
  });

  it('subscribes the conference events the contract lists, in the conference options it names', async () => {
    expect(CONFERENCE_CALLBACK_EVENTS).toEqual(contract.conferenceCallback.events);
    const { flex, manager } = fakeFlex(validCustomData());
    installResolved(flex, manager, { fetch: jest.fn(), log: recordingLogger() });
    const payload: any = { task: voiceTask() };
    await flex.Actions.runBefore('AcceptTask', payload);
    const { url, events } = contract.conferenceCallback.conferenceOptions;
    expect(Object.keys(payload.conferenceOptions).sort()).toEqual([url, events].sort());
    expect(payload.conferenceOptions[events]).toBe(contract.conferenceCallback.events.join(contract.conferenceCallback.eventSeparator));
    expect(routePath(contract.conferenceCallback.route).method).toBe('POST');
  });

  it('checks the operator on the route the contract names', () => {
    const policy = { namespace: 'contact-centre', name: 'recovery', publicUrl: 'https://flex-operator.example.com', workflowSids: [] };
    const { method, path } = routePath(contract.check.route);
    expect(method).toBe('GET');
    expect(checkUrl(policy)).toBe(`${policy.publicUrl}${fill(path, { namespace: policy.namespace, policy: policy.name })}`);
    expect(contract.check.headers).toEqual({ Authorization: 'Bearer {token}' });
    expect(contract.check.okStatus).toBe(200);
  });

  it('sends the graceful mark the contract describes', async () => {
    const { flex, manager } = fakeFlex(validCustomData(), 'the-agents-flex-token');
    const fetch = jest.fn(async () => ({ ok: true, status: contract.graceful.okStatus }));
    installResolved(flex, manager, { fetch, log: recordingLogger() });
    await flex.Actions.runBefore('HangupCall', { task: voiceTask() });

    expect(fetch).toHaveBeenCalledTimes(1);
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    const { method, path } = routePath(contract.graceful.route);
    const values = {
      namespace: 'contact-centre',
      policy: 'recovery',
      token: 'the-agents-flex-token',
      conferenceSid: CONFERENCE,
      callSid: AGENT_CALL,
    };
    expect(url).toBe(`https://flex-operator.example.com${fill(path, values)}`);
    expect(init.method).toBe(method);
    const headers = Object.fromEntries(Object.entries(contract.graceful.headers).map(([k, v]) => [k, fill(v, values)]));
    expect(init.headers).toEqual(headers);
    const body = Object.fromEntries(Object.entries(contract.graceful.body).map(([k, v]) => [k, fill(v, values)]));
    expect(JSON.parse(String(init.body))).toEqual(body);
  });
});

describe('contract: the configuration the plugin reads from the operator', () => {
  const values = {
    accountSid: ACCOUNT,
    token: 'the-agents-flex-token',
    namespace: 'contact-centre',
    policy: 'recovery',
    activityPolicy: 'activity',
    publicUrl: 'https://flex-operator.example.com',
    workflowSid: WORKFLOW_PROTECTED,
    conferenceSid: '{conferenceSid}',
  };
  const answer = () => JSON.parse(fill(JSON.stringify(contract.flexConfig.answer), values));

  it('asks for it as the contract says, and installs what the answer says', async () => {
    const { flex, manager } = fakeFlex(validSettings(), values.token);
    const configFetch = jest.fn(async () => jsonResponse(contract.flexConfig.okStatus, answer()));
    const log = recordingLogger();
    await expect(start(flex, manager, { fetch: jest.fn(), log, config: { fetch: configFetch } })).resolves.toBe('ok');

    expect(configFetch).toHaveBeenCalledTimes(1);
    const [url, init] = configFetch.mock.calls[0] as unknown as [string, RequestInit];
    const { method, path } = routePath(contract.flexConfig.route);
    const query = new URLSearchParams(Object.entries(contract.flexConfig.query).map(([k, v]) => [k, fill(v, values)]));
    expect(url).toBe(`${values.publicUrl}${path}?${query}`);
    expect(init.method).toBe(method);
    expect(init.headers).toEqual(Object.fromEntries(Object.entries(contract.flexConfig.headers).map(([k, v]) => [k, fill(v, values)])));

    // The callback is the policy's conference route of the answer.
    const payload: any = { task: voiceTask() };
    await flex.Actions.runBefore('AcceptTask', payload);
    expect(payload.conferenceOptions.conferenceStatusCallback).toBe(answer().recovery.policies[0].routes.conference);
    // The policy's system activities are refused.
    const { aborted } = await flex.Actions.runBefore('SetActivity', { activityName: 'After Call Work' });
    expect(aborted).toBe(true);
    expect(log.lines.error).toEqual([]);
  });

  it.each(contract.flexConfig.refusedStatuses)('shows the agent that the operator refused the token (%i)', async (status) => {
    const { flex, manager } = fakeFlex(validSettings());
    const log = recordingLogger();
    const configFetch = jest.fn(async () => jsonResponse(status, 'the Flex token is not valid'));
    await expect(start(flex, manager, { fetch: jest.fn(), log, config: { fetch: configFetch } })).resolves.toBe('unavailable');
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([ConfigNoticeId.Unavailable]);
  });
});

describe('contract: the markers of the operator recovery tasks', () => {
  it.each(contract.taskMarkers.examples.map((ex) => [ex.role, ex] as const))('tells a %s task', (_, ex) => {
    expect(taskRole(ex.attributes)).toBe(ex.role);
  });

  it('reads the marker attribute the contract names', () => {
    const ping = contract.taskMarkers.examples.find((ex) => ex.role === 'ping')!;
    const unmarked = { ...ping.attributes } as Record<string, unknown>;
    delete unmarked[contract.taskMarkers.attribute];
    expect(taskRole(unmarked)).toBe('customer');
  });
});

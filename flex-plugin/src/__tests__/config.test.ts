import { checkPublicUrl, DEFAULT_GRACEFUL_TIMEOUT_MS, DEFAULT_SYSTEM_ACTIVITIES, readConfig } from '../config';
import { validCustomData, WORKFLOW_OTHER, WORKFLOW_PROTECTED } from '../testing/fakeFlex';

const errorsOf = (customData: unknown): string[] => {
  const r = readConfig(customData);
  if (r.kind !== 'invalid') {
    throw new Error(`expected an invalid configuration, got ${JSON.stringify(r)}`);
  }
  return r.errors;
};

describe('readConfig', () => {
  it('reads a full configuration and fills the defaults', () => {
    const r = readConfig(validCustomData());
    expect(r).toEqual({
      kind: 'ok',
      config: {
        recovery: {
          policies: [
            {
              namespace: 'contact-centre',
              name: 'recovery',
              publicUrl: 'https://flex-operator.example.com',
              workflowSids: [WORKFLOW_PROTECTED],
            },
          ],
          gracefulTimeoutMs: DEFAULT_GRACEFUL_TIMEOUT_MS,
          autoAccept: true,
        },
        activity: {
          pendingActivityAttribute: 'pendingActivity',
          extendedWrapupAttribute: 'extendedWrapup',
          systemActivities: DEFAULT_SYSTEM_ACTIVITIES,
          deferWhileBusy: true,
        },
      },
    });
  });

  it('lets a policy override the namespace and public URL, and takes every setting', () => {
    const r = readConfig({
      flexOperator: {
        publicUrl: 'https://a.example.com',
        namespace: 'ns-a',
        recovery: {
          policies: [
            { name: 'one', workflowSids: [WORKFLOW_PROTECTED] },
            { name: 'two', namespace: 'ns-b', publicUrl: 'https://b.example.com/base/', workflowSids: [WORKFLOW_OTHER] },
          ],
          gracefulTimeoutMs: 800,
          autoAccept: false,
        },
        activity: {
          pendingActivityAttribute: 'deferredActivity',
          extendedWrapupAttribute: 'moreTime',
          systemActivities: ['Busy'],
          activityChangeWhileBusy: 'Allow',
        },
      },
    });
    expect(r.kind).toBe('ok');
    if (r.kind !== 'ok') return;
    expect(r.config.recovery?.policies.map((p) => [p.namespace, p.name, p.publicUrl])).toEqual([
      ['ns-a', 'one', 'https://a.example.com'],
      ['ns-b', 'two', 'https://b.example.com/base'],
    ]);
    expect(r.config.recovery?.gracefulTimeoutMs).toBe(800);
    expect(r.config.recovery?.autoAccept).toBe(false);
    expect(r.config.activity).toEqual({
      pendingActivityAttribute: 'deferredActivity',
      extendedWrapupAttribute: 'moreTime',
      systemActivities: ['Busy'],
      deferWhileBusy: false,
    });
  });

  it('accepts recovery alone, activity alone (true means the defaults)', () => {
    const recoveryOnly = validCustomData();
    delete recoveryOnly.flexOperator.activity;
    expect(readConfig(recoveryOnly)).toMatchObject({ kind: 'ok', config: { recovery: {} } });
    expect(readConfig({ flexOperator: { activity: true } })).toMatchObject({
      kind: 'ok',
      config: { activity: { pendingActivityAttribute: 'pendingActivity' } },
    });
  });

  it('is disabled by enabled: false', () => {
    expect(readConfig(validCustomData({ enabled: false }))).toEqual({ kind: 'disabled' });
  });

  it('refuses a missing configuration', () => {
    expect(errorsOf(undefined)).toEqual([
      'custom_data.flexOperator is missing from the Flex configuration (ui_attributes.custom_data)',
    ]);
    expect(errorsOf({ other: 1 })[0]).toMatch(/missing/);
    expect(errorsOf({ flexOperator: 'yes' })).toEqual(['custom_data.flexOperator must be an object']);
    expect(errorsOf({ flexOperator: {} })).toEqual([
      'custom_data.flexOperator configures nothing: give "recovery", "activity" or both',
    ]);
  });

  it.each([
    ['a public URL with a query', { publicUrl: 'https://x.example.com/?a=1' }, /flexOperator.publicUrl must be an absolute/],
    ['a relative public URL', { publicUrl: '/operator' }, /flexOperator.publicUrl must be an absolute/],
    ['a public URL with user info', { publicUrl: 'https://u:p@x.example.com' }, /flexOperator.publicUrl must be an absolute/],
    ['a public URL with a space', { publicUrl: 'https://x.example.com/a b' }, /publicUrl must not contain spaces/],
    ['no public URL at all', { publicUrl: undefined }, /policies\[0\].publicUrl must be a non-empty string/],
    ['a namespace that is not a Kubernetes name', { namespace: 'Contact_Centre' }, /namespace "Contact_Centre" is not/],
    ['an unknown setting', { publicURL: 'https://x.example.com' }, /flexOperator.publicURL is not a known setting/],
    ['enabled as a string', { enabled: 'true' }, /enabled must be true or false/],
    ['recovery as a list', { recovery: [] }, /recovery must be an object/],
    ['no policies', { recovery: { policies: [] } }, /policies must be a non-empty list/],
    ['a policy without workflows', { recovery: { policies: [{ name: 'recovery' }] } }, /workflowSids must be a non-empty list/],
    [
      'a workflow SID in upper case',
      { recovery: { policies: [{ name: 'recovery', workflowSids: [WORKFLOW_PROTECTED.toUpperCase()] }] } },
      /is not a workflow SID/,
    ],
    [
      'a policy name that is not a Kubernetes name',
      { recovery: { policies: [{ name: 'Recovery Policy', workflowSids: [WORKFLOW_PROTECTED] }] } },
      /name "Recovery Policy" is not a Kubernetes object name/,
    ],
    [
      'one workflow in two policies',
      {
        recovery: {
          policies: [
            { name: 'a', workflowSids: [WORKFLOW_PROTECTED] },
            { name: 'b', workflowSids: [WORKFLOW_PROTECTED] },
          ],
        },
      },
      /listed by both contact-centre\/a and contact-centre\/b/,
    ],
    [
      'a graceful timeout too long to hold a hang-up',
      { recovery: { policies: [{ name: 'r', workflowSids: [WORKFLOW_PROTECTED] }], gracefulTimeoutMs: 60000 } },
      /gracefulTimeoutMs must be a whole number/,
    ],
    ['an attribute name with a dot', { activity: { pendingActivityAttribute: 'flex.pending' } }, /is not an attribute name/],
    ['an empty system activity list', { activity: { systemActivities: [] } }, /systemActivities must be a non-empty list/],
    ['a busy policy that does not exist', { activity: { activityChangeWhileBusy: 'Queue' } }, /must be Defer or Allow/],
  ])('refuses %s', (_, overrides, message) => {
    const errors = errorsOf(validCustomData(overrides as Record<string, unknown>));
    expect(errors.join('\n')).toMatch(message);
  });

  it('reports every problem at once', () => {
    const errors = errorsOf({
      flexOperator: {
        publicUrl: 'ftp://x',
        namespace: 'BAD',
        recovery: { policies: [{ name: 'r', workflowSids: ['nope'] }], autoAccept: 'yes' },
      },
    });
    expect(errors.length).toBeGreaterThanOrEqual(4);
  });
});

describe('checkPublicUrl', () => {
  it('keeps the URL as written but for one trailing slash (the operator does the same)', () => {
    expect(checkPublicUrl('https://Ops.Example.com:8443/a/')).toEqual({ url: 'https://Ops.Example.com:8443/a' });
    expect(checkPublicUrl('http://10.0.0.1:9443', true)).toEqual({ url: 'http://10.0.0.1:9443' });
  });
  it('refuses http:// (mixed content on the https Flex page) unless allowed for local development', () => {
    expect(checkPublicUrl('http://10.0.0.1:9443')).toEqual({ error: expect.stringMatching(/must be an https URL.*allowInsecureHttp/) });
    expect(readConfig(validCustomData({ publicUrl: 'http://flex-operator.example.com' }))).toMatchObject({ kind: 'invalid' });
    expect(readConfig(validCustomData({ publicUrl: 'http://flex-operator.example.com' }), { allowInsecureHttp: true })).toMatchObject({ kind: 'ok' });
  });
  it('refuses a URL the browser cannot parse', () => {
    expect(checkPublicUrl('https://x.example.com:99999')).toHaveProperty('error');
  });
});

import { readSettings } from '../settings';
import { validSettings } from '../testing/fakeFlex';

const errorsOf = (customData: unknown): string[] => {
  const r = readSettings(customData);
  if (r.kind !== 'invalid') {
    throw new Error(`expected invalid settings, got ${JSON.stringify(r)}`);
  }
  return r.errors;
};

describe('readSettings', () => {
  it('needs only the operator URL', () => {
    expect(readSettings(validSettings())).toEqual({
      kind: 'ok',
      settings: { operatorUrl: 'https://flex-operator.example.com', allowInsecureHttp: false, overrides: { recovery: true, activity: true } },
    });
  });

  it('takes the overrides', () => {
    expect(readSettings(validSettings({ operatorUrl: 'https://op.example.com/base/', recovery: { gracefulTimeoutMs: 800, autoAccept: false }, activity: false }))).toEqual({
      kind: 'ok',
      settings: {
        operatorUrl: 'https://op.example.com/base',
        allowInsecureHttp: false,
        overrides: { recovery: true, activity: false, gracefulTimeoutMs: 800, autoAccept: false },
      },
    });
    expect(readSettings(validSettings({ recovery: false }))).toMatchObject({ settings: { overrides: { recovery: false, activity: true } } });
  });

  it.each([
    ['no operator URL', { flexOperator: {} }, /operatorUrl must be the operator's public URL/],
    ['an http operator URL', validSettings({ operatorUrl: 'http://op.example.com' }), /must be an https URL/],
    ['a graceful timeout out of range', validSettings({ recovery: { gracefulTimeoutMs: 60000 } }), /gracefulTimeoutMs must be a whole number of milliseconds from 100 to 5000/],
    ['policies written by hand', validSettings({ recovery: { policies: [] } }), /recovery.policies is no longer set here/],
    ['activity settings written by hand', validSettings({ activity: { systemActivities: ['Busy'] } }), /activity.systemActivities is no longer set here/],
    ['an unknown key', validSettings({ operatorURL: 'https://x' }), /operatorURL is not a known setting/],
    ['allowInsecureHttp not a boolean', validSettings({ allowInsecureHttp: 'yes' }), /allowInsecureHttp must be true or false/],
  ])('refuses %s', (_, customData, message) => {
    expect(errorsOf(customData).join('\n')).toMatch(message);
  });

  it('is disabled on purpose', () => {
    expect(readSettings(validSettings({ enabled: false }))).toEqual({ kind: 'disabled' });
  });
});

// Fakes of Flex UI's public API (Actions, Notifications, Manager, the TaskRouter worker and the
// components' content fragments) for the tests. Actions behave as Flex's do: an invoked action calls
// its "before" listeners together, each given the payload (which it may change) and an abort
// function, and waits for all of them (a listener's rejection is caught); an aborted action does
// not run.
import type { ReactElement } from 'react';

import { readConfig } from '../config';
import type { ActionListener, FlexApi, Logger, ManagerLike, NotificationSpec, ReservationLike } from '../flexApi';
import type { ConfigResponse, OperatorConfig, StorageLike } from '../operatorConfig';
import { install, StartOptions, StartResult } from '../start';

export class FakeActions {
  listeners = new Map<string, ActionListener[]>();

  registered = new Map<string, (payload: any) => Promise<any>>();

  /** Actions invoked by the code under test, in order. */
  invoked: Array<{ name: string; payload: any }> = [];

  /** What an invoked built-in action (AcceptTask…) does; by default it succeeds. */
  builtIn: (name: string, payload: any) => Promise<any> = async () => undefined;

  addListener(event: string, listener: ActionListener): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
  }

  registerAction(name: string, action: (payload: any) => Promise<any>): void {
    if (this.registered.has(name)) {
      throw new Error(`action ${name} is already registered`);
    }
    this.registered.set(name, action);
  }

  async invokeAction(name: string, payload?: any): Promise<any> {
    this.invoked.push({ name, payload });
    const { aborted } = await this.runBefore(name, payload);
    if (aborted) {
      return undefined;
    }
    const custom = this.registered.get(name);
    return custom ? custom(payload) : this.builtIn(name, payload);
  }

  /** runBefore runs the "before" listeners of an action as Flex does, and says if one aborted. */
  async runBefore(name: string, payload: any): Promise<{ aborted: boolean }> {
    let aborted = false;
    const abort = () => {
      aborted = true;
    };
    await Promise.all(
      (this.listeners.get(`before${name}`) ?? []).map((listener) =>
        new Promise<void>((resolve) => resolve(listener(payload, abort))).catch((e) => {
          this.listenerErrors.push(e);
        }),
      ),
    );
    return { aborted };
  }

  /** Errors "before" listeners threw (Flex logs them and goes on). */
  listenerErrors: unknown[] = [];

  count(event: string): number {
    return this.listeners.get(event)?.length ?? 0;
  }
}

export class FakeNotifications {
  registered = new Map<string, NotificationSpec>();

  shown: Array<{ id: string; context?: any }> = [];

  registerNotification(n: NotificationSpec): void {
    this.registered.set(n.id, n);
  }

  showNotification(id: string, context?: object): null {
    if (!this.registered.has(id)) {
      throw new Error(`notification ${id} is not registered`);
    }
    this.shown.push({ id, context });
    return null;
  }

  /** The text Flex would show: the template filled from the context. */
  text(i: number): string {
    const { id, context } = this.shown[i];
    return (this.registered.get(id)?.content ?? '').replace(/{{(\w+)}}/g, (_, k) => String(context?.[k]));
  }
}

export class FakeFragment {
  added: Array<{ element: ReactElement; options?: any }> = [];

  add(element: ReactElement, options?: any): void {
    this.added.push({ element, options });
  }
}

type Listener = (...args: any[]) => void;

export class FakeWorker {
  sid = 'WK00000000000000000000000000000001';

  attributes: any = {};

  reservations = new Map<string, ReservationLike>();

  private handlers = new Map<string, Listener[]>();

  on(event: string, listener: Listener): this {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), listener]);
    return this;
  }

  emit(event: string, ...args: any[]): void {
    (this.handlers.get(event) ?? []).forEach((h) => h(...args));
  }

  /** setAttributes changes the attributes as TaskRouter does and emits attributesUpdated. */
  setAttributes(attributes: any): void {
    this.attributes = attributes;
    this.emit('attributesUpdated', this);
  }
}

export class FakeStore {
  state: any = { flex: { worker: { activities: new Map() }, supervisor: { workers: [] } } };

  private listeners = new Set<() => void>();

  getState(): any {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setState(state: any): void {
    this.state = state;
    this.listeners.forEach((l) => l());
  }
}

export interface FakeFlex {
  flex: FlexApi & {
    Actions: FakeActions;
    Notifications: FakeNotifications;
    MainHeader: { Content: FakeFragment };
    TaskCanvasHeader: { Content: FakeFragment };
  };
  manager: ManagerLike & { workerClient: FakeWorker; store: FakeStore };
}

export function fakeFlex(customData: unknown, token = 'flex-token-of-alice'): FakeFlex {
  return {
    flex: {
      Actions: new FakeActions(),
      Notifications: new FakeNotifications(),
      NotificationType: { information: 'information', success: 'success', warning: 'warning', error: 'error' },
      MainHeader: { Content: new FakeFragment() },
      TaskCanvasHeader: { Content: new FakeFragment() },
    },
    manager: {
      serviceConfiguration: { ui_attributes: { custom_data: customData }, account_sid: ACCOUNT },
      user: { token },
      workerClient: new FakeWorker(),
      store: new FakeStore(),
    },
  };
}

/** A logger that records what it is given. */
export function recordingLogger(): Logger & { lines: Record<'debug' | 'warn' | 'error', unknown[][]> } {
  const lines = { debug: [] as unknown[][], warn: [] as unknown[][], error: [] as unknown[][] };
  return {
    lines,
    debug: (...a: unknown[]) => lines.debug.push(a),
    warn: (...a: unknown[]) => lines.warn.push(a),
    error: (...a: unknown[]) => lines.error.push(a),
  };
}

// SIDs used across the tests.
export const ACCOUNT = 'AC0123456789abcdef0123456789abcdef';
export const WORKFLOW_PROTECTED = 'WW0123456789abcdef0123456789abcdef';
export const WORKFLOW_OTHER = 'WWfedcba9876543210fedcba9876543210';
export const CONFERENCE = 'CF0123456789abcdef0123456789abcdef';
export const AGENT_CALL = 'CA0123456789abcdef0123456789abcdef';

/** A valid configuration: one policy protecting WORKFLOW_PROTECTED, and the activity features. */
export function validCustomData(overrides: Record<string, unknown> = {}): any {
  return {
    flexOperator: {
      publicUrl: 'https://flex-operator.example.com',
      namespace: 'contact-centre',
      recovery: { policies: [{ name: 'recovery', workflowSids: [WORKFLOW_PROTECTED] }] },
      activity: {},
      ...overrides,
    },
  };
}

/** A Flex voice task as the plugin reads it. */
export function voiceTask(overrides: Record<string, unknown> = {}): any {
  return {
    sid: 'WR0123456789abcdef0123456789abcdef',
    taskSid: 'WT0123456789abcdef0123456789abcdef',
    taskChannelUniqueName: 'voice',
    workflowSid: WORKFLOW_PROTECTED,
    status: 'accepted',
    attributes: { from: '+15550001111', conference: { sid: CONFERENCE, participants: { worker: AGENT_CALL } } },
    conference: {
      conferenceSid: CONFERENCE,
      participants: [
        { isMyself: false, callSid: 'CAffffffffffffffffffffffffffffffff', participantType: 'customer', status: 'joined' },
        { isMyself: true, callSid: AGENT_CALL, participantType: 'worker', status: 'joined' },
      ],
    },
    ...overrides,
  };
}

/**
 * installResolved installs the plugin from a resolved configuration held where the fake keeps
 * custom_data (validCustomData's shape: what start builds from the operator's answer), for the
 * tests of the behaviours; start.test.ts and operatorConfig.test.ts test how it is built.
 */
export function installResolved(flex: FlexApi, manager: ManagerLike, o: StartOptions): StartResult {
  const r = readConfig(manager.serviceConfiguration.ui_attributes.custom_data);
  if (r.kind === 'ok') {
    install(flex, manager, r.config, o);
  }
  return r.kind;
}

/** The plugin's settings in custom_data: the operator's URL and optional overrides. */
export function validSettings(overrides: Record<string, unknown> = {}): any {
  return { flexOperator: { operatorUrl: 'https://flex-operator.example.com', ...overrides } };
}

/** The operator's answer to GET /flex/config matching validCustomData(). */
export function operatorAnswer(overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  const base = 'https://flex-operator.example.com';
  return {
    version: 1,
    accountSid: ACCOUNT,
    maxAgeSeconds: 300,
    recovery: {
      gracefulTimeoutMs: 1500,
      policies: [
        {
          namespace: 'contact-centre',
          name: 'recovery',
          publicUrl: base,
          workflowSids: [WORKFLOW_PROTECTED],
          routes: {
            conference: `${base}/twilio/contact-centre/recovery/conference`,
            graceful: `${base}/flex/contact-centre/recovery/graceful`,
            recovery: `${base}/flex/contact-centre/recovery/recoveries/{conferenceSid}`,
          },
        },
      ],
    },
    activity: {
      policies: [
        {
          namespace: 'contact-centre',
          name: 'activity',
          pendingActivityAttribute: 'pendingActivity',
          extendedWrapupAttribute: 'extendedWrapup',
          systemActivities: ['On a Task', 'On a Task, No ACD', 'Wrap Up', 'Wrap Up, No ACD', 'Extended Wrap Up'],
          activityChangeWhileBusy: 'Defer',
        },
      ],
    },
    ...overrides,
  };
}

/** A response of the config fetch. */
export function jsonResponse(status: number, body: unknown): ConfigResponse {
  return { ok: status >= 200 && status < 300, status, json: async () => body };
}

/** Web Storage in memory. */
export class MemoryStorage implements StorageLike {
  items = new Map<string, string>();

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }

  removeItem(key: string): void {
    this.items.delete(key);
  }
}

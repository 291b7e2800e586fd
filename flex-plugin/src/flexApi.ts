// The part of Flex UI's public API the plugin uses, as narrow interfaces. The plugin's entry point
// passes Flex's real objects where these are expected, so the TypeScript compiler checks that Flex
// provides them; the tests pass fakes of the same interfaces.
import type { ReactElement } from 'react';

/** A Flex action listener: "before…" listeners may abort and may be async (Flex waits for them). */
export type ActionListener = (payload: any, abort: () => void) => void | Promise<void>;

export interface ActionsApi {
  addListener(event: string, listener: ActionListener): unknown;
  invokeAction(name: string, payload?: any): Promise<any>;
  registerAction(name: string, action: (payload: any) => Promise<any>): void;
}

export interface NotificationSpec {
  id: string;
  content: string;
  type?: any;
  timeout?: number;
  closeButton?: boolean;
}

export interface NotificationsApi {
  registerNotification(notification: NotificationSpec): void;
  showNotification(id: string, context?: object): unknown;
}

/** The notification types the plugin uses (Flex's NotificationType values). */
export interface NotificationTypes {
  information: any;
  success: any;
  warning: any;
  error: any;
}

/** A content fragment of a Flex component (MainHeader.Content, TaskCanvasHeader.Content…). */
export interface ContentFragment {
  add(element: ReactElement, options?: any): void;
}

/** What the plugin reads of a twilio-taskrouter Reservation. */
export interface ReservationLike {
  sid: string;
  status: string;
  task: { sid: string; attributes: any; taskChannelUniqueName?: string; workflowSid?: string };
}

/** What the plugin reads of the twilio-taskrouter Worker. */
export interface WorkerLike {
  sid: string;
  attributes: any;
  reservations: Map<string, ReservationLike>;
  on(event: string, listener: (...args: any[]) => void): unknown;
}

export interface ManagerLike {
  /** Flex's service configuration: account_sid names the account, ui_attributes.custom_data holds the settings. */
  serviceConfiguration: { ui_attributes: any; account_sid?: string };
  user: { token: string };
  workerClient?: WorkerLike;
  store: { getState(): any; subscribe(listener: () => void): () => void };
}

/** The Flex module, as far as the plugin uses it. */
export interface FlexApi {
  Actions: ActionsApi;
  Notifications: NotificationsApi;
  NotificationType: NotificationTypes;
  MainHeader: { Content: ContentFragment };
  TaskCanvasHeader: { Content: ContentFragment };
}

/** Where the plugin logs (the browser console). */
export interface Logger {
  debug(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

import * as Flex from '@twilio/flex-ui';
import { FlexPlugin } from '@twilio/flex-plugin';

import { start } from './start';

const PLUGIN_NAME = 'FlexOperatorPlugin';

/** window.localStorage, or none where the browser refuses it (some private modes throw on access). */
function browserStorage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
}

/** The Flex companion of flex-operator: what only the agent's browser can do. */
export default class FlexOperatorPlugin extends FlexPlugin {
  constructor() {
    super(PLUGIN_NAME);
  }

  async init(flex: typeof Flex, manager: Flex.Manager): Promise<void> {
    // Flex's own objects are passed where the plugin's narrow interfaces are expected, so the
    // compiler checks Flex provides what the plugin (and its tests' fakes) rely on.
    await start(flex, manager, {
      fetch: (url, init) => window.fetch(url, init),
      log: console,
      checkOperator: true,
      config: {
        fetch: (url, init) => window.fetch(url, init),
        storage: browserStorage(),
        schedule: (refresh, everyMs) => window.setInterval(() => void refresh(), everyMs),
      },
    });
  }
}

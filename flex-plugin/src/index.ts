import * as FlexPlugin from '@twilio/flex-plugin';

import FlexOperatorPlugin from './FlexOperatorPlugin';

FlexPlugin.loadPlugin(FlexOperatorPlugin);

// The Flex configuration `twilio flex:plugins:start` serves to the local Flex UI. Copy this file to
// public/appConfig.js (not committed: it is yours) before running it:
//
//   cp public/appConfig.example.js public/appConfig.js
//
// The local Flex UI loads the plugins deployed to your account through the plugins service, and
// this plugin from the local build; the plugin's own settings (custom_data.flexOperator, see
// README) come from your account's Flex configuration, as in production.
var appConfig = {
  pluginService: {
    enabled: true,
    url: '/plugins',
  },
  logLevel: 'info',
  showSupervisorDesktopView: true,
};

// Jest with the Flex plugin test preset, as `twilio flex:plugins:test` runs it (the preset of
// @twilio/flex-plugin-test, the jsdom environment), called directly so that no Twilio CLI is needed.
module.exports = {
  preset: '@twilio/flex-plugin-test',
  testEnvironment: 'jsdom',
};

// What the plugin's build and release tooling promises: the scripts its messages name exist, the
// deploy passes the version explicitly, and `twilio flex:plugins:start` finds its app config template.
import fs from 'fs';
import path from 'path';
import vm from 'vm';

const root = path.join(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

describe('packaging', () => {
  it('has every npm script that `npm run build` tells the developer to run next', () => {
    const messages = fs.readFileSync(require.resolve('@twilio/flex-plugin-scripts/dist/prints/buildSuccessful.js'), 'utf8');
    const advertised = Array.from(messages.matchAll(/installInfo\('npm', 'run ([\w:-]+)'\)/g)).map((m) => m[1]);
    expect(advertised.length).toBeGreaterThan(0);
    advertised.forEach((script) => expect(Object.keys(pkg.scripts)).toContain(script));
  });

  it('deploys with the version of package.json, given explicitly (the CLI would number a first upload 0.0.1)', () => {
    expect(pkg.scripts.deploy).toMatch(/^twilio flex:plugins:deploy --version "\$npm_package_version" /);
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  });

  it('ships the app config template that `twilio flex:plugins:start` needs as public/appConfig.js', () => {
    const source = fs.readFileSync(path.join(root, 'public', 'appConfig.example.js'), 'utf8');
    const sandbox: { appConfig?: any } = {};
    vm.runInNewContext(`${source}\nthis.appConfig = appConfig;`, sandbox);
    expect(sandbox.appConfig).toMatchObject({ pluginService: { enabled: true, url: '/plugins' } });
    expect(fs.readFileSync(path.join(root, '.gitignore'), 'utf8')).toMatch(/^public\/appConfig\.js$/m);
  });
});

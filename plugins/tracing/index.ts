import { definePack } from '../../src/pack.js';

export default definePack({
  name: 'tracing',
  code: 'TW',
  description: 'TODO',
});

import { definePack } from '../../src/pack.js';

export default definePack({
  name: 'system-log',
  code: 'TV',
  description: 'TODO',
});

import { definePack } from '../../src/pack.js';

export default definePack({
  name: 'health',
  code: 'TX',
  description: 'TODO',
});

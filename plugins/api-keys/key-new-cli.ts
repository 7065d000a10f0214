// `npm run key:new`: prints a new API key in the kernel's format, e.g. for ADMIN_API_KEY. Nothing
// is stored: the kernel makes sure the key exists (scope `admin`) when it starts with it set.
import { generateApiKey } from './key-format.js';

console.log(generateApiKey().token);

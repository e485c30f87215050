// The page's linter: ESLint's and typescript-eslint's recommended rules, on the page's own
// sources (not the generated wasm bindings, not the build output).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'pkg/', 'pkg.*/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The test scripts run in node and hand functions to the browser (playwright's evaluate), so
    // their globals are both; tsc does not check them, and the TypeScript sources get no-undef's
    // check from tsc itself.
    files: ['**/*.mjs'],
    rules: { 'no-undef': 'off' },
  },
  {
    rules: {
      // tsc's noUnusedLocals/noUnusedParameters already check this, with `_` for intended ones.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);

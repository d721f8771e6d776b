import { describe, expect, it } from 'vitest';
import { sequenceOf } from './request-sequence.ts';

const LINE = '1c554363-bcea-4d04-89dc-2a33ad5188e7';

describe('sequenceOf (the requests of one line, named as each API names them)', () => {
  it('names path-style S3 requests by operation and tells the line’s requests from the run’s', () => {
    const steps = sequenceOf(
      [
        { service: 's3', method: 'GET', path: `/b/?list-type=2&prefix=tokens%2F${LINE}%2F` },
        { service: 's3', method: 'HEAD', path: `/b/tokens/${LINE}/data` },
        { service: 's3', method: 'POST', path: `/b/tokens/${LINE}/data?uploads` },
        { service: 's3', method: 'PUT', path: `/b/tokens/${LINE}/data?partNumber=1&uploadId=u` },
        { service: 's3', method: 'POST', path: `/b/tokens/${LINE}/data?uploadId=u` },
        {
          service: 's3',
          method: 'PUT',
          path: '/b/tokens/_runs/2026-12-07/5f0e1b4c-1111-4222-8333-944455556666.json',
        },
        { service: 'tokens', method: 'GET', path: '/api/tokens' },
        { service: 'tokens', method: 'GET', path: `/api/tokens/${LINE}` },
        { service: 'tokens', method: 'GET', path: `/api/tokens/${LINE}/data` },
        { service: 'tokens', method: 'DELETE', path: `/api/tokens/${LINE}` },
      ],
      LINE,
    );

    expect(steps.map((step) => `${step.per} ${step.operation}`)).toEqual([
      'line ListObjectsV2',
      'line HeadObject',
      'line CreateMultipartUpload',
      'line UploadPart',
      'line CompleteMultipartUpload',
      'run PutObject',
      'run GET list',
      'line GET line',
      'line GET file',
      'line DELETE line',
    ]);
    expect(steps[0]?.target).toBe('/b/?list-type=2&prefix=tokens/{id}/');
    expect(steps[5]?.target).toBe('/b/tokens/_runs/{date}/{uuid}.json');
  });
});

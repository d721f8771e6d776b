import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';

/**
 * The topic every alarm notifies (id `AlarmTopic`), encrypted with its own key (`AlarmTopicKey`),
 * TLS only; `alarmEmail`, when given, is subscribed.
 */
export function createAlarmTopic(scope: Construct, alarmEmail: string | undefined): sns.Topic {
  // CloudWatch alarms can publish to an encrypted topic only with a customer managed key
  // whose policy lets CloudWatch use it (the AWS managed SNS key does not).
  const key = new kms.Key(scope, 'AlarmTopicKey', {
    description: 'tokens-housekeeper alarm topic encryption',
    enableKeyRotation: true,
    removalPolicy: RemovalPolicy.DESTROY,
    pendingWindow: Duration.days(7),
  });
  key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  const topic = new sns.Topic(scope, 'AlarmTopic', {
    displayName: 'tokens-housekeeper alarms',
    masterKey: key,
    enforceSSL: true,
  });
  if (alarmEmail !== undefined) {
    topic.addSubscription(new subscriptions.EmailSubscription(alarmEmail));
  }
  return topic;
}

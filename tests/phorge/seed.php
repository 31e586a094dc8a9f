<?php
// Seeds what Conduit cannot create: user accounts (with roles) and their Conduit API tokens, and
// workboard columns (Conduit has no column create/edit method). Used by tests/phorge/seed.py.
//
//   php seed.php <phorge-root> accounts < {"users": [{"username", "realname", "admin", "bot"}]}
//   php seed.php <phorge-root> columns  < {"projects": [{"phid", "columns": ["Inbox", ...]}]}
//
// Prints JSON on stdout: accounts -> {username: {phid, token}}; columns -> {projectPHID: {name: columnPHID}}.
// Both are idempotent: existing users, tokens, workboards and columns are reused.

$root = $argv[1];
$mode = $argv[2];
require_once $root.'/scripts/init/init-script.php';

$spec = json_decode(file_get_contents('php://stdin'), true);
$omnipotent = PhabricatorUser::getOmnipotentUser();
$source = PhabricatorContentSource::newForSource(
  PhabricatorConsoleContentSource::SOURCECONST);

function seed_accounts(array $spec, PhabricatorUser $omnipotent) {
  $out = array();
  foreach ($spec['users'] as $u) {
    $user = id(new PhabricatorUser())->loadOneWhere('username = %s', $u['username']);
    if (!$user) {
      $user = new PhabricatorUser();
      $user->setUsername($u['username']);
      $user->setRealName($u['realname']);
      $user->setIsApproved(1);
      if (!empty($u['admin'])) {
        $user->setIsAdmin(1);
      }
      $email = id(new PhabricatorUserEmail())
        ->setAddress($u['username'].'@example.com')
        ->setIsVerified(1);
      $editor = id(new PhabricatorUserEditor())->setActor($omnipotent);
      $editor->createNewUser($user, $email);
      if (!empty($u['bot'])) {
        $editor->makeSystemAgentUser($user, true);
      }
    }
    $tokens = id(new PhabricatorConduitToken())->loadAllWhere(
      'objectPHID = %s AND tokenType = %s',
      $user->getPHID(),
      PhabricatorConduitToken::TYPE_STANDARD);
    $token = head($tokens);
    if (!$token) {
      $token = PhabricatorConduitToken::initializeNewToken(
        $user->getPHID(),
        PhabricatorConduitToken::TYPE_STANDARD);
      $token->save();
    }
    $out[$u['username']] = array(
      'phid' => $user->getPHID(),
      'token' => $token->getToken(),
    );
  }
  return $out;
}

function column_name_xaction($name) {
  return id(new PhabricatorProjectColumnTransaction())
    ->setTransactionType(PhabricatorProjectColumnNameTransaction::TRANSACTIONTYPE)
    ->setNewValue($name);
}

function seed_columns(array $spec, PhabricatorUser $omnipotent, $source) {
  // Edits are made by an administrator, as in the web UI (the omnipotent user has no PHID to author them).
  $actor = id(new PhabricatorUser())->loadOneWhere('username = %s', $spec['actor']);
  if (!$actor) {
    throw new Exception('No user '.$spec['actor']);
  }
  $out = array();
  foreach ($spec['projects'] as $p) {
    $project = id(new PhabricatorProjectQuery())
      ->setViewer($omnipotent)
      ->withPHIDs(array($p['phid']))
      ->executeOne();
    if (!$project) {
      throw new Exception('No project '.$p['phid']);
    }
    $existing = id(new PhabricatorProjectColumnQuery())
      ->setViewer($omnipotent)
      ->withProjectPHIDs(array($project->getPHID()))
      ->execute();
    $by_name = array();
    $default = null;
    $sequence = 0;
    foreach ($existing as $column) {
      $by_name[$column->getName()] = $column;
      if ($column->isDefaultColumn()) {
        $default = $column;
      }
      $sequence = max($sequence, $column->getSequence());
    }

    // The web UI's "Create Workboard" (backlog only): a default column at sequence 0, then the
    // workboard flag. The default column is then renamed to the first column name.
    if (!$default) {
      $default = PhabricatorProjectColumn::initializeNewColumn($omnipotent)
        ->setSequence(0)
        ->setProperty('isDefault', true)
        ->setProjectPHID($project->getPHID())
        ->attachProject($project)
        ->attachProxy(null);
      $default->save();
    }
    if (!$project->getHasWorkboard()) {
      $xactions = array(
        id(new PhabricatorProjectTransaction())
          ->setTransactionType(PhabricatorProjectWorkboardTransaction::TRANSACTIONTYPE)
          ->setNewValue(1),
      );
      id(new PhabricatorProjectTransactionEditor())
        ->setActor($actor)
        ->setContentSource($source)
        ->setContinueOnNoEffect(true)
        ->setContinueOnMissingFields(true)
        ->applyTransactions($project, $xactions);
    }

    $result = array();
    foreach ($p['columns'] as $i => $name) {
      if ($i == 0) {
        $column = $default;
      } else if (isset($by_name[$name])) {
        $column = $by_name[$name];
      } else {
        // The web UI's "Add Column": the next sequence number, then a name transaction.
        $sequence++;
        $column = PhabricatorProjectColumn::initializeNewColumn($omnipotent)
          ->setProjectPHID($project->getPHID())
          ->attachProject($project)
          ->attachProxy(null)
          ->setSequence($sequence);
      }
      if ($column->getName() !== $name) {
        id(new PhabricatorProjectColumnTransactionEditor())
          ->setActor($actor)
          ->setContentSource($source)
          ->setContinueOnNoEffect(true)
          ->applyTransactions($column, array(column_name_xaction($name)));
      }
      $result[$name] = $column->getPHID();
    }
    $out[$project->getPHID()] = $result;
  }
  return $out;
}

if ($mode === 'accounts') {
  $result = seed_accounts($spec, $omnipotent);
} else if ($mode === 'columns') {
  $result = seed_columns($spec, $omnipotent, $source);
} else {
  fwrite(STDERR, "usage: php seed.php <phorge-root> accounts|columns < spec.json\n");
  exit(2);
}
echo json_encode($result);

# Users (Devise's columns), their work items, the analysis lines of each
# item, and the sign-in attempts per day.
class CreateEstimates < ActiveRecord::Migration[6.1]
  def change
    create_table :users do |t|
      t.string :username, null: false
      t.string :email, null: false, default: ""
      t.string :encrypted_password, null: false, default: ""
      t.timestamps
    end
    add_index :users, :username, unique: true
    add_index :users, :email, unique: true

    create_table :work_items do |t|
      t.references :user, null: false, foreign_key: true
      t.string :code, null: false, limit: 20
      t.string :title, null: false, limit: 200
      t.string :unit, null: false, limit: 10
      t.decimal :volume, precision: 12, scale: 2, null: false
      t.decimal :unit_price, precision: 14, scale: 2, null: false
      t.string :status, null: false, limit: 10, default: "draft"
      t.datetime :updated_at, null: false
    end

    create_table :analyses do |t|
      t.bigint :work_item_id, null: false
      t.string :kind, null: false, limit: 10
      t.string :component, null: false, limit: 100
      t.decimal :coefficient, precision: 10, scale: 4, null: false
      t.decimal :price, precision: 14, scale: 2, null: false
    end
    add_foreign_key :analyses, :work_items
    add_index :analyses, :work_item_id, name: "analyses_work_item_idx"

    create_table :daily_logins, id: false do |t|
      t.date :day, null: false, primary_key: true
      t.integer :attempts, null: false, default: 0
    end
  end
end
